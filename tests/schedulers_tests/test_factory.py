from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from prl_tune.schedulers import (
    PLRS,
    PLRS_VARIANTS,
    SCHEDULER_DEFAULTS,
    SCHEDULER_NAMES,
    SCHEDULER_PARAMS,
    SCHEDULERS,
    KneeLR,
    build_scheduler,
)

_BOUNDS = {"lr_min": 0.01, "lr_max": 0.1, "seed": 0}
_PARAMS: dict[str, dict[str, Any]] = {
    "plrs": _BOUNDS,
    "cosine": {"lr": 0.1},
    "onecycle": {"lr": 0.1},
    "knee": {"lr": 0.1},
    "multistep": {"lr": 0.1},
    "constant": {"lr": 0.1},
    **dict.fromkeys(PLRS_VARIANTS, _BOUNDS),
}


def _optimizer(lr: float | torch.Tensor = 0.5, n_groups: int = 1) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(n_groups)]
    return torch.optim.Adam(groups, lr=lr, foreach=False)


def _lrs(scheduler: LRScheduler, optimizer: torch.optim.Optimizer, n_steps: int) -> list[float]:
    """First-group LR at construction and after each of ``n_steps`` steps."""
    optimizer.step()
    lrs = [float(optimizer.param_groups[0]["lr"])]
    for _ in range(n_steps):
        scheduler.step()
        lrs.append(float(optimizer.param_groups[0]["lr"]))
    return lrs


def _plrs_first_draw(seed: int, lo: float, hi: float, distribution: str = "uniform") -> float:
    """PLRS's draw at construction: one float64 uniform from a generator of its own, mapped by
    the distribution's quantile function (the paper's: the identity)."""
    u = torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).item()
    if distribution == "log-uniform":
        return lo * (hi / lo) ** u
    if distribution == "beta":
        from scipy import stats

        u = float(stats.beta(2.0, 2.0).ppf(u))
    return min(lo + (hi - lo) * u, hi)


def _three_phase(
    peak: float, div_factor: float, final_div_factor: float, pct_start: float, total: int
) -> list[float]:
    """Three-phase one-cycle, linear: up to ``peak`` at step ``pct_start * total - 1``, back
    down to ``peak / div_factor`` at ``2 * pct_start * total - 2``, then to
    ``peak / (div_factor * final_div_factor)`` at the last step (torch's phase ends)."""
    initial = peak / div_factor
    final = initial / final_div_factor
    up = round(pct_start * total) - 1
    down = 2 * round(pct_start * total) - 2
    lrs = []
    for t in range(total):
        if t <= up:
            lrs.append(initial + (peak - initial) * t / up)
        elif t <= down:
            lrs.append(peak + (initial - peak) * (t - up) / (down - up))
        else:
            lrs.append(initial + (final - initial) * (t - down) / (total - 1 - down))
    return lrs


def test_names_and_params_agree() -> None:
    assert SCHEDULER_NAMES == (
        *("plrs", "cosine", "onecycle", "knee", "multistep", "constant"),
        *("plrs-epoch", "plrs-every8", "plrs-loguniform", "plrs-beta"),
    )
    assert PLRS_VARIANTS == SCHEDULER_NAMES[6:]
    assert set(SCHEDULER_PARAMS) == set(SCHEDULER_NAMES) == set(SCHEDULER_DEFAULTS)
    bounded = ("plrs", *PLRS_VARIANTS)
    assert all(SCHEDULER_PARAMS[name] == ("lr_min", "lr_max") for name in bounded)
    assert all(SCHEDULER_PARAMS[name] == ("lr",) for name in SCHEDULER_NAMES if name not in bounded)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_each_name_builds(name: str) -> None:
    optimizer = _optimizer(lr=0.5)
    optimizer.param_groups[0]["initial_lr"] = 7.0  # left over from an earlier scheduler
    scheduler = build_scheduler(name, optimizer, epochs=2, steps_per_epoch=5, **_PARAMS[name])
    assert isinstance(scheduler, LRScheduler)
    # The first LR comes from the given params, not from the optimizer or the stale initial_lr.
    first = {
        "plrs": _plrs_first_draw(0, 0.01, 0.1),
        "plrs-epoch": _plrs_first_draw(0, 0.01, 0.1),
        "plrs-every8": _plrs_first_draw(0, 0.01, 0.1),
        "plrs-loguniform": _plrs_first_draw(0, 0.01, 0.1, "log-uniform"),
        "plrs-beta": _plrs_first_draw(0, 0.01, 0.1, "beta"),
        "onecycle": 0.1 / 10.0,  # lr / div_factor
    }.get(name, 0.1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(first, rel=1e-12)
    assert all(0.0 <= x <= 0.1 + 1e-12 for x in _lrs(scheduler, optimizer, 9))


def test_plrs_and_knee_classes() -> None:
    plrs = build_scheduler("plrs", _optimizer(), epochs=1, steps_per_epoch=4, **_PARAMS["plrs"])
    assert isinstance(plrs, PLRS)
    assert (plrs.lr_min, plrs.lr_max, plrs.seed) == ([0.01], [0.1], 0)
    knee = build_scheduler("knee", _optimizer(), epochs=1, steps_per_epoch=4, lr=0.1)
    assert isinstance(knee, KneeLR)


@pytest.mark.parametrize(
    ("name", "choices"),
    [
        ("plrs", (1, "uniform", 2.0)),
        ("plrs-epoch", (5, "uniform", 2.0)),  # steps_per_epoch
        ("plrs-every8", (8, "uniform", 2.0)),
        ("plrs-loguniform", (1, "log-uniform", 2.0)),
        ("plrs-beta", (1, "beta", 2.0)),
    ],
)
def test_each_plrs_variant_fixes_one_choice(name: str, choices: tuple[Any, ...]) -> None:
    scheduler = build_scheduler(name, _optimizer(), epochs=2, steps_per_epoch=5, **_BOUNDS)
    assert isinstance(scheduler, PLRS)
    assert (scheduler.draw_every, scheduler.distribution, scheduler.beta_shape) == choices
    assert (scheduler.lr_min, scheduler.lr_max, scheduler.seed) == ([0.01], [0.1], 0)


@pytest.mark.parametrize(
    ("params", "draw_every", "distribution", "beta_shape"),
    [
        ({"draw_every": "step"}, 1, "uniform", 2.0),
        ({"draw_every": "epoch"}, 7, "uniform", 2.0),
        ({"draw_every": 3}, 3, "uniform", 2.0),
        ({"distribution": "beta", "beta_shape": 4.0}, 1, "beta", 4.0),
    ],
)
def test_plrs_takes_its_choices_as_params(
    params: dict[str, Any], draw_every: int, distribution: str, beta_shape: float
) -> None:
    scheduler = build_scheduler(
        "plrs", _optimizer(), epochs=2, steps_per_epoch=7, **_BOUNDS, **params
    )
    assert isinstance(scheduler, PLRS)
    assert (scheduler.draw_every, scheduler.distribution, scheduler.beta_shape) == (
        draw_every,
        distribution,
        beta_shape,
    )
    beta = build_scheduler(
        "plrs-beta", _optimizer(), epochs=2, steps_per_epoch=7, **_BOUNDS, beta_shape=5
    )
    assert isinstance(beta, PLRS) and beta.beta_shape == 5.0


def test_cosine_restarts_after_1_3_7_epochs() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler("cosine", optimizer, epochs=8, steps_per_epoch=10, lr=0.1)
    lrs = _lrs(scheduler, optimizer, 79)
    restarts = [t for t in range(1, 80) if lrs[t] > lrs[t - 1]]
    assert restarts == [10, 30, 70]
    assert all(lrs[t] == pytest.approx(0.1) for t in [0, 10, 30, 70])
    assert min(lrs) >= 1e-4
    assert lrs[9] == pytest.approx(1e-4 + (0.1 - 1e-4) * (1 + math.cos(math.pi * 0.9)) / 2)


def test_onecycle_three_phases() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler("onecycle", optimizer, epochs=10, steps_per_epoch=10, lr=0.1)
    lrs = _lrs(scheduler, optimizer, 99)  # the 100 LRs used by the 100 optimizer steps
    assert lrs == pytest.approx(_three_phase(0.1, 10.0, 10.0, 0.45, 100), rel=1e-12)
    assert max(range(100), key=lrs.__getitem__) == 44  # step 0.45 * 100 - 1
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[88] == pytest.approx(0.01)  # back at lr / div_factor after another 45 %
    assert lrs[-1] == pytest.approx(0.001)  # lr / 100 at the end
    assert lrs[88:] == sorted(lrs[88:], reverse=True)


def test_onecycle_overrides() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler(
        "onecycle",
        optimizer,
        epochs=10,
        steps_per_epoch=10,
        lr=0.1,
        div_factor=25.0,
        final_div_factor=4.0,
        pct_start=0.3,
    )
    lrs = _lrs(scheduler, optimizer, 99)
    assert lrs == pytest.approx(_three_phase(0.1, 25.0, 4.0, 0.3, 100), rel=1e-12)
    assert lrs[0] == pytest.approx(0.004)
    assert max(range(100), key=lrs.__getitem__) == 29  # step 0.3 * 100 - 1
    assert lrs[-1] == pytest.approx(0.001)


def test_knee_constant_then_linear_to_zero() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler("knee", optimizer, epochs=10, steps_per_epoch=10, lr=0.1)
    lrs = _lrs(scheduler, optimizer, 100)
    assert lrs[:51] == [0.1] * 51
    assert lrs[50:] == pytest.approx([0.1 * (1 - (t - 50) / 50) for t in range(50, 101)])
    assert lrs[75] == pytest.approx(0.05)
    assert lrs[100] == 0.0


def test_multistep_drops_at_half_and_three_quarters() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler("multistep", optimizer, epochs=10, steps_per_epoch=10, lr=0.1)
    lrs = _lrs(scheduler, optimizer, 99)
    assert lrs[:50] == [0.1] * 50
    assert lrs[50:75] == pytest.approx([0.01] * 25)
    assert lrs[75:] == pytest.approx([0.001] * 25)


def test_constant() -> None:
    optimizer = _optimizer()
    scheduler = build_scheduler("constant", optimizer, epochs=3, steps_per_epoch=10, lr=0.1)
    assert _lrs(scheduler, optimizer, 40) == [0.1] * 41


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_tensor_lr_kept_in_place(name: str) -> None:
    tensors = [torch.tensor(0.5, dtype=torch.float64) for _ in range(2)]
    optimizer = torch.optim.Adam(
        [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in tensors],
        lr=0.5,
        foreach=False,
    )
    scheduler = build_scheduler(name, optimizer, epochs=2, steps_per_epoch=5, **_PARAMS[name])
    float_optimizer = _optimizer(lr=0.5, n_groups=2)  # the same schedule on float LRs
    float_scheduler = build_scheduler(
        name, float_optimizer, epochs=2, steps_per_epoch=5, **_PARAMS[name]
    )
    for step in range(10):
        if step:
            for opt, sched in ((optimizer, scheduler), (float_optimizer, float_scheduler)):
                opt.step()
                sched.step()
        assert all(g["lr"] is lr for g, lr in zip(optimizer.param_groups, tensors, strict=True))
        expected = [g["lr"] for g in float_optimizer.param_groups]
        assert [lr.item() for lr in tensors] == expected, step


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_state_dict_round_trip(name: str) -> None:
    optimizer = _optimizer(n_groups=2)
    scheduler = build_scheduler(name, optimizer, epochs=4, steps_per_epoch=5, **_PARAMS[name])
    full = _lrs(scheduler, optimizer, 19)

    optimizer = _optimizer(n_groups=2)
    scheduler = build_scheduler(name, optimizer, epochs=4, steps_per_epoch=5, **_PARAMS[name])
    _lrs(scheduler, optimizer, 7)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh_optimizer = _optimizer(n_groups=2)
    params = {**_PARAMS[name], "seed": 1} if SCHEDULERS[name].searches_bounds else _PARAMS[name]
    fresh = build_scheduler(name, fresh_optimizer, epochs=4, steps_per_epoch=5, **params)
    fresh.load_state_dict(state)
    fresh_optimizer.step()
    continued = []
    for _ in range(12):
        fresh.step()
        continued.append(float(fresh_optimizer.param_groups[0]["lr"]))
    assert continued == full[8:]


def _check_error(
    error: type[Exception], match: str, name: Any, optimizer_lr: float = 0.5, **kwargs: Any
) -> None:
    optimizer = _optimizer(lr=optimizer_lr)
    kwargs = {"epochs": 2, "steps_per_epoch": 5, **kwargs}
    with pytest.raises(error, match=match) as info:
        build_scheduler(name, optimizer, **kwargs)
    assert "\n" not in str(info.value)
    assert optimizer.param_groups[0]["lr"] == optimizer_lr
    assert "initial_lr" not in optimizer.param_groups[0]


def test_unknown_name() -> None:
    _check_error(ValueError, "name must be one of .*'plrs'.* but got 'step'", "step", lr=0.1)
    _check_error(TypeError, "name", 3, lr=0.1)


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("cosine", {"lr": 0.1, "T0": 2}, TypeError, "T0"),
        ("plrs", {"lr": 0.1}, TypeError, "lr"),
        ("plrs", {"lr_min": 0.01}, TypeError, "lr_max"),
        ("knee", {}, TypeError, "lr"),
        ("cosine", {"lr": -0.1}, ValueError, "lr"),
        ("cosine", {"lr": math.nan}, ValueError, "lr"),
        ("cosine", {"lr": "0.1"}, TypeError, "lr"),
        ("cosine", {"lr": 0.1, "T_0": 0}, ValueError, "T_0"),
        ("cosine", {"lr": 0.1, "T_mult": 1.5}, TypeError, "T_mult"),
        ("cosine", {"lr": 0.1, "eta_min": 0.2}, ValueError, "eta_min"),
        ("onecycle", {"lr": 0.1, "pct_start": 0.6}, ValueError, "pct_start"),
        ("onecycle", {"lr": 0.1, "div_factor": 0}, ValueError, "div_factor"),
        ("knee", {"lr": 0.1, "explore_fraction": 1.5}, ValueError, "explore_fraction"),
        ("multistep", {"lr": 0.1, "milestones": (0.75, 0.5)}, ValueError, "milestones"),
        ("multistep", {"lr": 0.1, "milestones": 0.5}, TypeError, "milestones"),
        ("multistep", {"lr": 0.1, "gamma": 2.0}, ValueError, "gamma"),
        ("plrs", {"lr_min": 0.2, "lr_max": 0.1}, ValueError, "lr_max"),
        (
            "plrs",
            {**_BOUNDS, "draw_every": "week"},
            ValueError,
            r"draw_every must be 'step', 'epoch' or an integer >= 1 \(steps\) but got 'week'\.",
        ),
        ("plrs", {**_BOUNDS, "draw_every": 0}, ValueError, "draw_every must be 'step'"),
        ("plrs", {**_BOUNDS, "draw_every": 2.0}, TypeError, r"but got 2\.0 \(float\)"),
        ("plrs", {**_BOUNDS, "distribution": "normal"}, ValueError, "distribution must be one"),
        (
            "plrs-epoch",
            {**_BOUNDS, "draw_every": 8},
            TypeError,
            r"params of 'plrs-epoch' must not set \['draw_every'\] \(the variant fixes "
            r"draw_every='epoch'; use 'plrs' to choose it\) but got \[8\]\.",
        ),
        ("plrs-beta", {**_BOUNDS, "distribution": "beta"}, TypeError, "must not set"),
        ("plrs-loguniform", {"lr_min": 0.0, "lr_max": 0.1}, ValueError, "lr_min must be > 0"),
    ],
)
def test_bad_params(name: str, params: dict[str, Any], error: type[Exception], match: str) -> None:
    _check_error(error, match, name, **params)


@pytest.mark.parametrize(
    ("budget", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.0}, TypeError, "epochs"),
        ({"steps_per_epoch": -1}, ValueError, "steps_per_epoch"),
        ({"steps_per_epoch": True}, TypeError, "steps_per_epoch"),
    ],
)
def test_bad_budget(budget: dict[str, Any], error: type[Exception], match: str) -> None:
    _check_error(error, match, "constant", lr=0.1, **budget)


def test_onecycle_too_short_for_three_phases() -> None:
    _check_error(ValueError, "pct_start", "onecycle", lr=0.1, epochs=1, steps_per_epoch=2)
