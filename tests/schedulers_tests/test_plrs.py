from __future__ import annotations

import io
import math
import random
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from prl_tune.schedulers import PLRS

# ------------------------------------------------------------------------------------ helpers


def _optimizer(n_groups: int = 1, lr: float = 0.5) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(n_groups)]
    return torch.optim.SGD(groups, lr=lr)


def _run(scheduler: PLRS, optimizer: torch.optim.Optimizer, n_steps: int) -> list[list[float]]:
    """LRs after construction (or the current ones) followed by those of ``n_steps`` steps."""
    optimizer.step()  # no gradients: a no-op that satisfies the step-order check
    lrs = [scheduler.get_last_lr()]
    for _ in range(n_steps):
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def _reference(
    seed: int, lows: list[float], highs: list[float], n_draws: int, warmup_steps: int = 0
) -> list[list[float]]:
    """Plain PLRS: one ``torch.rand`` per step from a generator of its own, python floats."""
    generator = torch.Generator().manual_seed(seed)
    lrs = []
    for t in range(n_draws):
        u = torch.rand(len(lows), generator=generator, dtype=torch.float64).tolist()
        row = [min(lo + (hi - lo) * x, hi) for lo, hi, x in zip(lows, highs, u, strict=True)]
        if t < warmup_steps:
            row = [lr * ((t + 1) / (warmup_steps + 1)) for lr in row]
        lrs.append(row)
    return lrs


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


# -------------------------------------------------------------------------------- behaviour


def test_construction_sets_first_draw() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=7)
    first = _reference(7, [0.01], [0.1], 1)[0]
    assert scheduler.get_last_lr() == first
    assert optimizer.param_groups[0]["lr"] == first[0]
    assert scheduler.last_epoch == 0


@pytest.mark.parametrize("warmup_steps", [0, 1, 50])
@pytest.mark.parametrize(
    ("lows", "highs"), [([0.01], [0.1]), ([0.0, 1e-3, 0.5], [1e-4, 1e-3, 2.0])]
)
def test_matches_plain_reference(warmup_steps: int, lows: list[float], highs: list[float]) -> None:
    optimizer = _optimizer(len(lows))
    scheduler = PLRS(optimizer, lows, highs, seed=3, warmup_steps=warmup_steps)
    lrs = _run(scheduler, optimizer, 2100)  # crosses two block boundaries
    assert lrs == _reference(3, lows, highs, 2101, warmup_steps)
    assert [g["lr"] for g in optimizer.param_groups] == lrs[-1]


def test_same_seed_same_sequence_other_seed_differs() -> None:
    runs = {}
    for key, seed in [("a", 11), ("b", 11), ("c", 12)]:
        optimizer = _optimizer(2)
        runs[key] = _run(PLRS(optimizer, 0.01, 0.1, seed=seed), optimizer, 100)
    assert runs["a"] == runs["b"]
    assert all(x != y for x, y in zip(runs["a"], runs["c"], strict=True))


def test_draws_within_per_group_bounds() -> None:
    lows, highs = [0.0, 0.1, 3e-5, 0.1], [1e-3, 0.3, 3e-5 + 1e-12, 0.7]
    optimizer = _optimizer(4)
    lrs = np.array(_run(PLRS(optimizer, lows, highs, seed=0), optimizer, 5000))
    assert np.all(lrs >= np.array(lows))
    assert np.all(lrs <= np.array(highs))


def test_equal_bounds_give_a_constant_lr() -> None:
    optimizer = _optimizer()
    lrs = _run(PLRS(optimizer, 0.05, 0.05, seed=0), optimizer, 50)
    assert lrs == [[0.05]] * 51


def test_warmup_ramp_bounds() -> None:
    lo, hi, warmup = 0.02, 0.2, 10
    optimizer = _optimizer()
    lrs = [
        row[0] for row in _run(PLRS(optimizer, lo, hi, seed=5, warmup_steps=warmup), optimizer, 200)
    ]
    for t, lr in enumerate(lrs):
        scale = (t + 1) / (warmup + 1) if t < warmup else 1.0
        assert lo * scale <= lr <= hi * scale, t
    assert lrs[warmup:] == [row[0] for row in _reference(5, [lo], [hi], 201)[warmup:]]


def test_step_contract() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0)
    optimizer.step()
    for expected in range(1, 5):
        scheduler.step()
        assert scheduler.last_epoch == expected
        assert scheduler._step_count == expected + 1
    lrs = scheduler.get_last_lr()
    assert all(type(lr) is float for lr in lrs)
    lrs.append(1.0)  # the returned list is a copy
    assert len(scheduler.get_last_lr()) == 1


def test_warns_when_stepped_before_optimizer() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        scheduler.step()


def test_no_warning_in_the_right_order() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            optimizer.step()
            scheduler.step()


def test_get_lr_outside_step_warns() -> None:
    scheduler = PLRS(_optimizer(), 0.01, 0.1, seed=0)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()


def test_deprecated_epoch_argument_sets_last_epoch() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0, warmup_steps=100)
    optimizer.step()
    with pytest.warns(UserWarning):
        scheduler.step(200)
    assert scheduler.last_epoch == 200
    # The second draw, unscaled: step 200 is past the warmup.
    second = _reference(0, [0.01], [0.1], 2)[1]
    assert scheduler.get_last_lr() == second
    assert optimizer.param_groups[0]["lr"] == second[0]


def test_properties() -> None:
    scheduler = PLRS(_optimizer(2), [0.0, 0.1], [0.2, 0.1], seed=4, warmup_steps=3)
    assert scheduler.lr_min == [0.0, 0.1]
    assert scheduler.lr_max == [0.2, 0.1]
    assert scheduler.lr_center == [0.1, 0.1]
    assert scheduler.seed == 4
    assert scheduler.warmup_steps == 3


def test_int_bounds_are_accepted() -> None:
    scheduler = PLRS(_optimizer(), 0, 1, seed=0)
    assert scheduler.lr_min == [0.0]
    assert scheduler.lr_max == [1.0]


def test_seed_none_is_drawn_and_stored() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1)
    assert isinstance(scheduler.seed, int)
    assert scheduler.seed >= 0
    assert scheduler.state_dict()["seed"] == scheduler.seed
    lrs = _run(scheduler, optimizer, 10)
    assert lrs == _reference(scheduler.seed, [0.01], [0.1], 11)


def test_global_rng_state_untouched() -> None:
    torch_state = torch.get_rng_state()
    numpy_state: Any = np.random.get_state()
    python_state = random.getstate()
    for seed in (0, None):
        optimizer = _optimizer(3)
        scheduler = PLRS(optimizer, 0.01, 0.1, seed=seed, warmup_steps=5)
        _run(scheduler, optimizer, 3000)
        PLRS(_optimizer(3), 0.0, 1.0, seed=1).load_state_dict(scheduler.state_dict())
    assert torch.equal(torch.get_rng_state(), torch_state)
    after: Any = np.random.get_state()
    assert after[0] == numpy_state[0]
    assert np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]
    assert random.getstate() == python_state


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tensor_lr_is_written_in_place(dtype: torch.dtype) -> None:
    lr = torch.tensor(0.5, dtype=dtype)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=lr, foreach=False)
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=2)
    expected = _reference(2, [0.01], [0.1], 6)
    seen = [scheduler.get_last_lr()[0]]
    for _ in range(5):
        param.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] is lr
        assert lr.item() == torch.tensor(scheduler.get_last_lr()[0], dtype=dtype).item()
        seen.append(scheduler.get_last_lr()[0])
    assert seen == [row[0] for row in expected]
    restored = PLRS(optimizer, 0.0, 1.0, seed=9)
    restored.load_state_dict(scheduler.state_dict())
    restored.step()
    assert optimizer.param_groups[0]["lr"] is lr


def test_capturable_tensor_lr_kept() -> None:
    lr = torch.tensor(0.01)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.ones(1))], lr=lr, capturable=True)
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr
    second = _reference(0, [0.01], [0.1], 2)[1]
    assert scheduler.get_last_lr() == second  # the float64 draw, not the float32 tensor
    assert lr.item() == torch.tensor(second[0], dtype=torch.float32).item()


# ------------------------------------------------------------------------------ state dicts


def test_state_dict_keys_and_types() -> None:
    state = PLRS(_optimizer(2), 0.01, 0.1, seed=1).state_dict()
    assert set(state) == {
        "version",
        "seed",
        "lr_min",
        "lr_max",
        "warmup_steps",
        "draw_every",
        "distribution",
        "beta_shape",
        "block_size",
        "block_rng_state",
        "block_offset",
        "last_epoch",
        "step_count",
        "last_lr",
        "base_lrs",
    }
    assert state["version"] == 2
    assert (state["draw_every"], state["distribution"], state["beta_shape"]) == (1, "uniform", 2.0)
    assert state["block_rng_state"].dtype == torch.uint8
    assert state["last_epoch"] == 0
    assert state["step_count"] == 1


@pytest.mark.parametrize("save_at", [0, 5, 1023, 1024, 1025, 3000])
def test_resume_is_bit_exact(save_at: int) -> None:
    lows, highs, warmup, more = [0.01, 0.2], [0.1, 0.3], 8, 1100
    optimizer = _optimizer(2)
    scheduler = PLRS(optimizer, lows, highs, seed=21, warmup_steps=warmup)
    full = _run(scheduler, optimizer, save_at + more)

    optimizer = _optimizer(2)
    scheduler = PLRS(optimizer, lows, highs, seed=21, warmup_steps=warmup)
    _run(scheduler, optimizer, save_at)
    state = _roundtrip(scheduler.state_dict())

    fresh_optimizer = _optimizer(2)
    fresh = PLRS(fresh_optimizer, 0.0, 1.0, seed=99)  # other seed, bounds and warmup
    fresh.load_state_dict(state)
    assert fresh.get_last_lr() == full[save_at]
    assert fresh.last_epoch == save_at
    assert (fresh.seed, fresh.lr_min, fresh.lr_max, fresh.warmup_steps) == (21, lows, highs, warmup)
    resumed = _run(fresh, fresh_optimizer, more)
    assert resumed == full[save_at:]
    assert [g["lr"] for g in fresh_optimizer.param_groups] == full[-1]


def test_state_dict_is_a_snapshot() -> None:
    optimizer = _optimizer()
    scheduler = PLRS(optimizer, 0.01, 0.1, seed=0)
    state = scheduler.state_dict()
    expected = _run(scheduler, optimizer, 30)
    scheduler.load_state_dict(state)  # rewinds
    assert _run(scheduler, optimizer, 30) == expected


def test_load_rejects_other_number_of_groups() -> None:
    state = PLRS(_optimizer(2), 0.01, 0.1, seed=0).state_dict()
    with pytest.raises(ValueError, match="param groups"):
        PLRS(_optimizer(3), 0.01, 0.1, seed=0).load_state_dict(state)


def test_load_rejects_foreign_state() -> None:
    scheduler = PLRS(_optimizer(), 0.01, 0.1, seed=0)
    other = torch.optim.lr_scheduler.StepLR(_optimizer(), step_size=3).state_dict()
    with pytest.raises(ValueError, match="version"):
        scheduler.load_state_dict(other)
    state = scheduler.state_dict()
    del state["block_offset"]
    with pytest.raises(ValueError, match="block_offset"):
        scheduler.load_state_dict(state)


# ---------------------------------------------------------------------------- bad arguments

_BAD_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"lr_min": -0.1}, ValueError, "lr_min"),
    ({"lr_min": math.nan}, ValueError, "lr_min"),
    ({"lr_min": math.inf, "lr_max": math.inf}, ValueError, "lr_min"),
    ({"lr_max": math.inf}, ValueError, "lr_max"),
    ({"lr_max": math.nan}, ValueError, "lr_max"),
    ({"lr_min": 0.2, "lr_max": 0.1}, ValueError, "lr_max"),
    ({"lr_min": [0.01]}, ValueError, "lr_min"),
    ({"lr_max": [0.1, 0.1, 0.1]}, ValueError, "lr_max"),
    ({"lr_max": [0.1, 0.001]}, ValueError, r"lr_max\[1\]"),
    ({"lr_min": [0.01, -1.0]}, ValueError, r"lr_min\[1\]"),
    ({"lr_max": "0.1"}, TypeError, "lr_max"),
    ({"lr_min": True}, TypeError, "lr_min"),
    ({"lr_max": [0.1, "x"]}, TypeError, r"lr_max\[1\]"),
    ({"lr_min": None}, TypeError, "lr_min"),
    ({"lr_max": torch.tensor(0.1)}, TypeError, "lr_max"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 2**64}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"seed": True}, TypeError, "seed"),
    ({"seed": "1"}, TypeError, "seed"),
    ({"warmup_steps": -1}, ValueError, "warmup_steps"),
    ({"warmup_steps": 2.0}, TypeError, "warmup_steps"),
    ({"warmup_steps": True}, TypeError, "warmup_steps"),
]


@pytest.mark.parametrize(("overrides", "error", "name"), _BAD_ARGUMENTS)
def test_bad_arguments_raise_and_leave_optimizer_alone(
    overrides: dict[str, Any], error: type[Exception], name: str
) -> None:
    optimizer = _optimizer(2, lr=0.5)
    step_before = optimizer.step
    kwargs: dict[str, Any] = {"lr_min": 0.01, "lr_max": 0.1, "seed": 0, **overrides}
    with pytest.raises(error, match=name) as info:
        PLRS(optimizer, **kwargs)
    assert "\n" not in str(info.value)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.5]
    assert all("initial_lr" not in g for g in optimizer.param_groups)
    assert optimizer.step == step_before


def test_error_message_names_rule_and_value() -> None:
    with pytest.raises(ValueError) as info:
        PLRS(_optimizer(), 0.1, 0.05)
    assert str(info.value) == "lr_max must be finite and >= lr_min (0.1) but got 0.05."


def test_not_an_optimizer() -> None:
    with pytest.raises(TypeError, match="optimizer"):
        PLRS("sgd", 0.01, 0.1)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- statistics
# Fixed seeds, so these are deterministic; the tolerances are the stated critical values.

_N = 20000


def _draws(lo: float, hi: float, n_groups: int = 1, seed: int = 1234) -> np.ndarray:
    optimizer = _optimizer(n_groups)
    scheduler = PLRS(optimizer, lo, hi, seed=seed)
    return np.array(_run(scheduler, optimizer, _N - 1))


def test_uniformity_kolmogorov_smirnov() -> None:
    lo, hi = 0.01, 0.3
    u = np.sort((_draws(lo, hi)[:, 0] - lo) / (hi - lo))
    n = len(u)
    ranks = np.arange(1, n + 1)
    statistic = max(np.max(ranks / n - u), np.max(u - (ranks - 1) / n))
    assert statistic * math.sqrt(n) < 1.63  # 1 % critical value of the KS distribution


def test_mean_and_variance() -> None:
    lo, hi = 0.05, 0.15
    x = _draws(lo, hi)[:, 0]
    n = len(x)
    # Four standard errors: the mean's is sigma / sqrt(n); the variance's is
    # sqrt((mu4 - sigma^4) / n) with mu4 = (b - a)^4 / 80 and sigma^4 = (b - a)^4 / 144.
    sigma = (hi - lo) / math.sqrt(12)
    assert abs(x.mean() - (lo + hi) / 2) < 4 * sigma / math.sqrt(n)
    se_var = (hi - lo) ** 2 * math.sqrt((1 / 80 - 1 / 144) / n)
    assert abs(x.var(ddof=1) - (hi - lo) ** 2 / 12) < 4 * se_var


def test_lag_one_autocorrelation() -> None:
    x = _draws(0.0, 1.0)[:, 0]
    r = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert abs(r) < 4 / math.sqrt(len(x))


def test_groups_are_independent() -> None:
    x = _draws(0.0, 1.0, n_groups=3)
    corr = np.corrcoef(x.T)
    off_diagonal = corr[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off_diagonal) < 4 / math.sqrt(len(x)))
