from __future__ import annotations

import json
import math
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from prl_tune.lr_finder import RangeTestResult, range_test, range_test_task
from prl_tune.training import TaskData, load_task

# Measured with 8-epoch PLRS training (lr_min = 0.7 x lr_max, 5 seeds) on digits/cnn: the
# smallest lr_max at which some run collapsed to chance or diverged (see RangeTestResult).
BLOW_UP_LR = {64: 0.6, 16: 0.5}


def _model() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 16),
            torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 3),
        )


def _batches(count: int = 5, size: int = 16) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, 4, generator=gen), torch.randint(0, 3, (size,), generator=gen))
        for _ in range(count)
    ]


def _run(**kwargs: Any) -> RangeTestResult:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    kwargs.setdefault("num_iter", 20)
    return range_test(model, optimizer, _batches(), **kwargs)


def _diverged() -> RangeTestResult:
    return _run(start_lr=1e-3, end_lr=1e6, num_iter=60)


def _steepest_index(losses: list[float]) -> int:
    """The documented rule: the most negative central-difference slope (one-sided at the ends)
    over the finite curve without its first 10 and last 5 points (all of it if < 3 remain)."""
    count = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    low, high = (10, count - 5) if count - 15 >= 3 else (0, count)
    part = losses[low:high]
    slopes = [part[1] - part[0]]
    slopes += [(part[i + 1] - part[i - 1]) / 2 for i in range(1, len(part) - 1)]
    slopes.append(part[-1] - part[-2])
    return low + slopes.index(min(slopes))


def test_exp_sweep_is_geometric_from_start_to_end() -> None:
    result = _run(start_lr=1e-4, end_lr=1e-2, num_iter=20)
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses) == 20
    assert result.lrs[0] == 1e-4
    assert result.lrs[-1] == 1e-2
    ratios = [b / a for a, b in pairwise(result.lrs)]
    assert all(r > 1 for r in ratios)
    assert max(ratios) - min(ratios) < 1e-9
    assert result.diverged_lr is None


def test_linear_sweep_has_equal_steps() -> None:
    result = _run(start_lr=1e-3, end_lr=1e-2, num_iter=10, step_mode="linear")
    assert result.lrs[0] == 1e-3
    assert result.lrs[-1] == 1e-2
    steps = [b - a for a, b in pairwise(result.lrs)]
    assert all(s > 0 for s in steps)
    assert max(steps) - min(steps) < 1e-12


def test_smoothed_loss_is_bias_corrected_ema() -> None:
    result = _run(start_lr=1e-4, end_lr=1e-3, num_iter=5, smooth_f=0.3)
    raw = result.raw_losses
    assert result.losses[0] == pytest.approx(raw[0])
    average = 0.0
    for step, loss in enumerate(raw):
        average = 0.3 * loss + 0.7 * average
        assert result.losses[step] == pytest.approx(average / (1 - 0.7 ** (step + 1)))
    assert (
        _run(num_iter=5, end_lr=1e-3, smooth_f=0.0).losses
        == _run(num_iter=5, end_lr=1e-3, smooth_f=0.0).raw_losses
    )


def test_huge_end_lr_stops_at_divergence() -> None:
    result = _diverged()
    assert len(result.lrs) < 60
    assert result.diverged_lr == result.lrs[-1]
    last, before = result.losses[-1], min(result.losses[:-1])
    assert not math.isfinite(last) or last > 5.0 * before
    # ... and it stops at the first such step: every earlier one is finite and within 5 x.
    for step in range(1, len(result.losses) - 1):
        assert math.isfinite(result.losses[step])
        assert result.losses[step] <= 5.0 * min(result.losses[:step]), step


def test_suggestions_lie_in_the_sweep_and_below_divergence() -> None:
    result = _diverged()
    assert result.diverged_lr is not None
    assert 1e-3 <= result.suggested_lr_max < result.diverged_lr
    assert result.suggested_lr_min == pytest.approx(0.7 * result.suggested_lr_max)
    assert result.suggested_lr_max == pytest.approx(max(result.min_loss_lr / 4, 1e-3))
    assert result.min_loss_lr in result.lrs
    assert result.steepest_lr == result.lrs[_steepest_index(result.losses)]
    finite = [v for v in result.losses if math.isfinite(v)]
    assert result.losses[result.lrs.index(result.min_loss_lr)] == min(finite)


def test_restore_is_bit_exact() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for inputs, targets in _batches(3):  # momentum buffers and BatchNorm statistics exist
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    model.eval()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    buffers = {p: s["momentum_buffer"] for p, s in optimizer.state.items()}
    momentum = {p: b.clone() for p, b in buffers.items()}

    range_test(model, optimizer, _batches(), end_lr=1e3, num_iter=30)

    after = model.state_dict()
    assert after.keys() == params.keys()
    for key, value in params.items():
        assert torch.equal(after[key], value), key
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    assert not model.training and not any(m.training for m in model.modules())
    assert optimizer.param_groups[0]["lr"] == 0.05
    for param, buffer in buffers.items():
        assert optimizer.state[param]["momentum_buffer"] is buffer  # restored in place
        assert torch.equal(buffer, momentum[param])


def test_restore_puts_back_an_empty_optimizer_state() -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    range_test(model, optimizer, _batches(), num_iter=5, end_lr=1e-2)
    assert not optimizer.state
    assert all(p.grad is None for p in model.parameters())


def test_tensor_lr_is_filled_in_place_and_restored() -> None:
    model = _model()
    lr = torch.tensor(0.01)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    range_test(model, optimizer, _batches(), num_iter=5, end_lr=0.5)
    assert optimizer.param_groups[0]["lr"] is lr
    assert torch.equal(lr, torch.tensor(0.01))  # put back bit for bit
    # An end_lr other than the starting LR, so that the sweep's last LR is told apart.
    range_test(model, optimizer, _batches(), num_iter=5, end_lr=0.5, restore=False)
    assert optimizer.param_groups[0]["lr"] is lr
    assert lr.item() == 0.5


def test_restore_false_leaves_the_model_trained() -> None:
    model = _model()
    before = [p.clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    range_test(model, optimizer, _batches(), num_iter=10, end_lr=1.0, restore=False)
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert optimizer.param_groups[0]["lr"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": -1e-3}, "start_lr"),
        ({"start_lr": math.nan}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 1.0}, "end_lr"),
        ({"end_lr": math.inf}, "end_lr"),
        ({"num_iter": 1}, "num_iter"),
        ({"num_iter": 10.0}, "num_iter"),
        ({"num_iter": True}, "num_iter"),
        ({"step_mode": "cos"}, "step_mode"),
        ({"smooth_f": 1.0}, "smooth_f"),
        ({"smooth_f": -0.1}, "smooth_f"),
        ({"diverge_th": 1.0}, "diverge_th"),
    ],
)
def test_bad_arguments_are_rejected_before_anything_is_touched(
    kwargs: dict[str, Any], name: str
) -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=name) as info:
        range_test(model, optimizer, _batches(), restore=False, **kwargs)
    assert "\n" not in str(info.value)
    assert "but got" in str(info.value)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="start_lr"):
        _run(start_lr="0.1")


class _CountingLoader:
    """A re-iterable loader of ``len`` 3 that counts its passes."""

    def __init__(self) -> None:
        self.batches = _batches(3)
        self.passes = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.passes += 1
        return iter(self.batches)


def test_a_loader_shorter_than_num_iter_is_cycled() -> None:
    loader = _CountingLoader()
    model = _model()
    result = range_test(
        model, torch.optim.SGD(model.parameters()), loader, num_iter=10, end_lr=1e-2
    )
    assert len(result.lrs) == 10
    assert loader.passes == 4


def test_a_one_shot_iterator_that_runs_out_is_an_error() -> None:
    model = _model()
    with pytest.raises(ValueError, match="train_loader"):
        range_test(model, torch.optim.SGD(model.parameters()), iter(_batches(3)), num_iter=10)


def test_to_dict_round_trips_through_json() -> None:
    result = _diverged()
    text = json.dumps(result.to_dict(), allow_nan=False)
    again = RangeTestResult.from_dict(json.loads(text))
    assert again.to_dict() == result.to_dict()
    assert again.lrs == result.lrs and again.diverged_lr == result.diverged_lr


def test_non_finite_losses_become_none() -> None:
    result = RangeTestResult(
        lrs=[0.1, 1.0, 10.0],
        losses=[2.0, 1.5, math.nan],
        raw_losses=[2.0, 1.0, math.inf],
        diverged_lr=10.0,
        suggested_lr_max=0.25,
        suggested_lr_min=0.175,
        steepest_lr=1.0,
        min_loss_lr=1.0,
    )
    data = result.to_dict()
    assert data["losses"][-1] is None and data["raw_losses"][-1] is None
    again = RangeTestResult.from_dict(json.loads(json.dumps(data, allow_nan=False)))
    assert math.isnan(again.losses[-1]) and math.isnan(again.raw_losses[-1])
    assert again.to_dict() == data


def test_from_dict_rejects_missing_and_unknown_keys() -> None:
    data = _run(num_iter=5, end_lr=1e-2).to_dict()
    with pytest.raises(ValueError, match="steepest_lr"):
        RangeTestResult.from_dict({k: v for k, v in data.items() if k != "steepest_lr"})
    with pytest.raises(ValueError, match="extra"):
        RangeTestResult.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="lengths"):
        RangeTestResult.from_dict({**data, "lrs": data["lrs"][:-1]})
    with pytest.raises(ValueError, match="at least one"):
        RangeTestResult.from_dict({**data, "lrs": [], "losses": [], "raw_losses": []})


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = _diverged().plot(tmp_path / "range.png")
    assert path == tmp_path / "range.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1024


def _dropout_task(seed: int) -> TaskData:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)
        )
    return TaskData(model=model, train_loader=_batches(), val_loader=_batches(1))


def test_range_test_task_leaves_the_global_rng_untouched_and_is_deterministic() -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = range_test_task(_dropout_task(0), seed=3, device="cpu", num_iter=12, end_lr=1.0)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = range_test_task(_dropout_task(0), seed=3, device="cpu", num_iter=12, end_lr=1.0)
    assert first == second
    other = range_test_task(_dropout_task(0), seed=4, device="cpu", num_iter=12, end_lr=1.0)
    assert other.raw_losses != first.raw_losses  # the seed drives the dropout masks


def test_range_test_task_builds_the_named_optimizer() -> None:
    task = load_task("digits", model="mlp", batch_size=128)
    result = range_test_task(
        task, optimizer="sgd", optimizer_params={"momentum": 0.9}, device="cpu", num_iter=30
    )
    assert len(result.lrs) <= 30 and result.lrs[0] == 1e-5
    # The same sweep by hand with torch's SGD(momentum=0.9), seeded as range_test_task does.
    same = load_task("digits", model="mlp", batch_size=128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sgd = torch.optim.SGD(same.model.parameters(), lr=0.1, momentum=0.9)
        expected = range_test(same.model, sgd, same.train_loader, num_iter=30)
    assert result.to_dict() == expected.to_dict()
    plain = range_test_task(
        load_task("digits", model="mlp", batch_size=128), device="cpu", num_iter=30
    )
    assert plain.raw_losses != result.raw_losses  # the momentum made a difference
    with pytest.raises(ValueError, match="optimizer_params"):
        range_test_task(task, optimizer_params={"lr": 0.1}, device="cpu")


@pytest.mark.parametrize("batch_size", [64, 16])
def test_digits_suggestion_lies_below_the_measured_blow_up(batch_size: int) -> None:
    task = load_task("digits", model="cnn", batch_size=batch_size, seed=0)
    result = range_test_task(task, seed=0, device="cpu")
    assert result.diverged_lr is not None
    assert 0.01 < result.suggested_lr_max < BLOW_UP_LR[batch_size]
    assert result.suggested_lr_max < result.min_loss_lr < result.diverged_lr
