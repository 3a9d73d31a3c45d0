from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch

from prl_tune.schedulers import KneeLR


def _optimizer(lrs: tuple[float, ...] = (0.2,)) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups)


def _run(scheduler: KneeLR, optimizer: torch.optim.Optimizer, n_steps: int) -> list[list[float]]:
    optimizer.step()
    lrs = [[float(lr) for lr in scheduler.get_last_lr()]]
    for _ in range(n_steps):
        scheduler.step()
        lrs.append([float(lr) for lr in scheduler.get_last_lr()])
    return lrs


def test_explore_then_linear_decay() -> None:
    optimizer = _optimizer((0.2,))
    lrs = [
        row[0] for row in _run(KneeLR(optimizer, total_steps=10, explore_steps=4), optimizer, 12)
    ]
    expected = [0.2] * 5 + [0.2 * (1 - k / 6) for k in range(1, 6)] + [0.0] * 3
    assert lrs == pytest.approx(expected, abs=1e-15)
    assert lrs[:5] == [0.2] * 5  # exact while exploring


def test_final_lr_and_several_groups() -> None:
    optimizer = _optimizer((0.2, 0.1))
    scheduler = KneeLR(optimizer, total_steps=4, explore_steps=2, final_lr=0.02)
    lrs = _run(scheduler, optimizer, 5)
    assert [row[0] for row in lrs] == pytest.approx([0.2, 0.2, 0.2, 0.11, 0.02, 0.02])
    assert [row[1] for row in lrs] == pytest.approx([0.1, 0.1, 0.1, 0.06, 0.02, 0.02])


def test_explore_equal_total_is_constant_then_final() -> None:
    optimizer = _optimizer()
    lrs = _run(KneeLR(optimizer, total_steps=3, explore_steps=3), optimizer, 4)
    assert [row[0] for row in lrs] == [0.2, 0.2, 0.2, 0.0, 0.0]


def test_no_explore_decays_from_the_start() -> None:
    optimizer = _optimizer()
    lrs = _run(KneeLR(optimizer, total_steps=4, explore_steps=0), optimizer, 4)
    assert [row[0] for row in lrs] == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])


def test_state_dict_round_trip_into_other_config() -> None:
    optimizer = _optimizer()
    full = _run(KneeLR(optimizer, total_steps=20, explore_steps=8), optimizer, 25)

    optimizer = _optimizer()
    scheduler = KneeLR(optimizer, total_steps=20, explore_steps=8)
    _run(scheduler, optimizer, 10)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh_optimizer = _optimizer()
    fresh = KneeLR(fresh_optimizer, total_steps=5, explore_steps=1)
    fresh.load_state_dict(state)
    assert _run(fresh, fresh_optimizer, 15) == full[10:]


def test_tensor_lr_in_place() -> None:
    lr = torch.tensor(0.2, dtype=torch.float64)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.ones(1))], lr=lr, foreach=False)
    scheduler = KneeLR(optimizer, total_steps=4, explore_steps=2)
    optimizer.step()
    for _ in range(3):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr
    assert lr.item() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("overrides", "error", "name"),
    [
        ({"total_steps": 0}, ValueError, "total_steps"),
        ({"total_steps": 10.0}, TypeError, "total_steps"),
        ({"total_steps": True}, TypeError, "total_steps"),
        ({"explore_steps": -1}, ValueError, "explore_steps"),
        ({"explore_steps": 11}, ValueError, "explore_steps"),
        ({"explore_steps": "5"}, TypeError, "explore_steps"),
        ({"final_lr": -0.1}, ValueError, "final_lr"),
        ({"final_lr": math.nan}, ValueError, "final_lr"),
        ({"final_lr": 0.5}, ValueError, "final_lr"),
        ({"final_lr": "0"}, TypeError, "final_lr"),
    ],
)
def test_bad_arguments(overrides: dict[str, Any], error: type[Exception], name: str) -> None:
    optimizer = _optimizer()
    kwargs: dict[str, Any] = {"total_steps": 10, "explore_steps": 5, **overrides}
    with pytest.raises(error, match=name) as info:
        KneeLR(optimizer, **kwargs)
    assert "\n" not in str(info.value)
    assert optimizer.param_groups[0]["lr"] == 0.2
    assert "initial_lr" not in optimizer.param_groups[0]
