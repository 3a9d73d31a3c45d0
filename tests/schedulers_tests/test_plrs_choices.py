"""PLRS's two hidden choices: how often it draws (``draw_every``) and from what distribution.

The statistical tests use fixed seeds, so they are deterministic; each states its tolerance (a
KS p-value floor of 0.01, i.e. the 1 % critical value, and four standard errors for moments).
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from prl_tune.schedulers import PLRS

# ------------------------------------------------------------------------------------ helpers


def _optimizer(n_groups: int = 1) -> torch.optim.SGD:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(n_groups)]
    return torch.optim.SGD(groups, lr=0.5)


def _run(scheduler: PLRS, optimizer: torch.optim.Optimizer, n_steps: int) -> list[list[float]]:
    """The LRs at construction (or the current ones), then after each of ``n_steps`` steps."""
    optimizer.step()  # no gradients: a no-op that satisfies the step-order check
    lrs = [scheduler.get_last_lr()]
    for _ in range(n_steps):
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def _lrs(n_steps: int, lo: Any = 0.01, hi: Any = 0.1, n_groups: int = 1, **kwargs: Any) -> Any:
    optimizer = _optimizer(n_groups)
    return np.array(_run(PLRS(optimizer, lo, hi, **kwargs), optimizer, n_steps))


def _uniforms(seed: int, n_draws: int, n_groups: int = 1) -> np.ndarray:
    """The ``u ~ U[0, 1)`` behind PLRS's draws: one float64 row per draw from its generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n_draws, n_groups, generator=generator, dtype=torch.float64).numpy()


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


DISTRIBUTIONS = ["uniform", "log-uniform", "beta"]

# ------------------------------------------------------------------ the paper's draws, unchanged


def test_default_draws_are_bit_identical_to_those_before_the_choices() -> None:
    # The SHA-256 of repr() of the 3001 LRs of PLRS(lr_min=0.07, lr_max=0.1, seed=0), computed
    # with prl_tune/schedulers/_plrs.py as it was before draw_every and distribution existed.
    lrs = _run(*_with_optimizer(lr_min=0.07, lr_max=0.1, seed=0), 3000)
    digest = hashlib.sha256(repr(lrs).encode()).hexdigest()
    assert digest == "059c7a498b415433d3bc8a25216a07df27b5482308a8a3c1f405db2bf76542de"


def _with_optimizer(**kwargs: Any) -> tuple[PLRS, torch.optim.Optimizer]:
    optimizer = _optimizer()
    return PLRS(optimizer, **kwargs), optimizer


def test_the_paper_choices_spelled_out_change_nothing() -> None:
    plain = _lrs(2100, seed=4, warmup_steps=3)
    spelled = _lrs(2100, seed=4, warmup_steps=3, draw_every=1, distribution="uniform")
    assert np.array_equal(plain, spelled)
    shaped = _lrs(2100, seed=4, warmup_steps=3, distribution="uniform", beta_shape=7.0)
    assert np.array_equal(plain, shaped)  # the beta shape only shapes beta draws


# ---------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("draw_every", [1, 3])
def test_every_draw_stays_inside_the_bounds(distribution: str, draw_every: int) -> None:
    # Wide, narrow, tiny-width, equal and sub-normal-adjacent bounds, one group each.
    lows = [1e-6, 0.1, 3e-5, 0.05, 1e-300]
    highs = [1.0, 0.3, 3e-5 + 1e-12, 0.05, 1e-299]
    lrs = _lrs(
        3000, lows, highs, n_groups=5, seed=0, distribution=distribution, draw_every=draw_every
    )
    assert np.all(lrs >= np.array(lows)) and np.all(lrs <= np.array(highs))
    assert np.all(lrs[:, 3] == 0.05)  # equal bounds: a constant LR


def test_uniform_matches_its_distribution() -> None:
    lo, hi = 0.01, 0.3
    x = _lrs(19999, lo, hi, seed=1234)[:, 0]
    assert stats.kstest(x, stats.uniform(lo, hi - lo).cdf).pvalue > 0.01
    sigma = (hi - lo) / math.sqrt(12)
    assert abs(x.mean() - (lo + hi) / 2) < 4 * sigma / math.sqrt(len(x))


def test_log_uniform_matches_its_distribution() -> None:
    lo, hi = 1e-4, 1.0
    x = _lrs(19999, lo, hi, seed=1234, distribution="log-uniform")[:, 0]
    assert stats.kstest(x, stats.loguniform(lo, hi).cdf).pvalue > 0.01
    # log(lr) is uniform on [log lo, log hi]: its mean is the log of the geometric centre, its
    # variance (log(hi / lo))^2 / 12; four standard errors each.
    logs, width = np.log(x), math.log(hi / lo)
    n = len(x)
    assert abs(logs.mean() - math.log(lo * hi) / 2) < 4 * width / math.sqrt(12 * n)
    se_var = width**2 * math.sqrt((1 / 80 - 1 / 144) / n)
    assert abs(logs.var(ddof=1) - width**2 / 12) < 4 * se_var
    # Half the draws lie below the geometric centre 1e-2 (uniform: below 0.5).
    assert abs(np.mean(x < 1e-2) - 0.5) < 4 * 0.5 / math.sqrt(n)


@pytest.mark.parametrize("shape", [0.5, 2.0, 5.0])
def test_beta_matches_its_distribution(shape: float) -> None:
    lo, hi = 0.02, 0.2
    x = _lrs(19999, lo, hi, seed=1234, distribution="beta", beta_shape=shape)[:, 0]
    target = stats.beta(shape, shape, loc=lo, scale=hi - lo)
    assert stats.kstest(x, target.cdf).pvalue > 0.01
    # Symmetric about the centre; Var = w^2 / (4 (2a + 1)); four standard errors each (the
    # variance's from the fourth central moment of Beta(a, a)).
    n, width = len(x), hi - lo
    var = width**2 / (4 * (2 * shape + 1))
    assert abs(x.mean() - (lo + hi) / 2) < 4 * math.sqrt(var / n)
    mu4 = target.moment(4) - 4 * target.mean() * target.moment(3)
    mu4 += 6 * target.mean() ** 2 * target.moment(2) - 3 * target.mean() ** 4
    assert abs(x.var(ddof=1) - var) < 4 * math.sqrt((mu4 - var**2) / n)


def test_the_tests_tell_the_distributions_apart() -> None:
    # The KS test of each distribution's draws against another's target rejects at once: the
    # tests above would notice a wrong mapping.
    lo, hi = 0.01, 0.3
    targets = {
        "uniform": stats.uniform(lo, hi - lo),
        "log-uniform": stats.loguniform(lo, hi),
        "beta": stats.beta(2.0, 2.0, loc=lo, scale=hi - lo),
    }
    for drawn in DISTRIBUTIONS:
        x = _lrs(4999, lo, hi, seed=7, distribution=drawn)[:, 0]
        for name, target in targets.items():
            if name != drawn:
                assert stats.kstest(x, target.cdf).pvalue < 1e-6, (drawn, name)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_each_draw_is_the_quantile_of_the_same_uniform(distribution: str) -> None:
    # The reference: the generator's uniforms mapped by the distribution's quantile function.
    lows, highs = np.array([0.01, 0.5]), np.array([0.1, 2.0])
    u = _uniforms(3, 2101, 2)
    quantile = {
        "uniform": lambda: lows + (highs - lows) * u,
        "log-uniform": lambda: lows * (highs / lows) ** u,
        "beta": lambda: lows + (highs - lows) * stats.beta(2.0, 2.0).ppf(u),
    }[distribution]()
    lrs = _lrs(2100, list(lows), list(highs), n_groups=2, seed=3, distribution=distribution)
    np.testing.assert_allclose(lrs, quantile, rtol=1e-12, atol=0)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_groups_are_independent(distribution: str) -> None:
    x = _lrs(9999, 0.01, 0.1, n_groups=3, seed=0, distribution=distribution)
    corr = np.corrcoef(x.T)
    assert np.all(np.abs(corr[~np.eye(3, dtype=bool)]) < 4 / math.sqrt(len(x)))


# --------------------------------------------------------------------------- draw frequency


@pytest.mark.parametrize("draw_every", [2, 8, 23, 1500])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_k_draws_only_at_multiples_of_k(draw_every: int, distribution: str) -> None:
    n = 3 * 1500  # crosses a block of 1024 draws for k = 2
    every_step = _lrs(n, seed=5, distribution=distribution)
    every_k = _lrs(n, seed=5, distribution=distribution, draw_every=draw_every)
    for t in range(1, n + 1):
        if t % draw_every:
            assert np.array_equal(every_k[t], every_k[t - 1]), t
    # The j-th draw is the every-step scheduler's j-th draw: the same stream, drawn less often.
    assert np.array_equal(every_k, every_step[np.arange(n + 1) // draw_every])


def test_every_k_with_warmup_holds_the_draw_under_the_ramp() -> None:
    k, warmup = 4, 10
    held = _lrs(40, seed=2, draw_every=k)[:, 0]
    ramped = _lrs(40, seed=2, draw_every=k, warmup_steps=warmup)[:, 0]
    scale = np.array([(t + 1) / (warmup + 1) if t < warmup else 1.0 for t in range(41)])
    assert np.array_equal(ramped, held * scale)


def test_draw_every_epoch_from_the_factory_draws_at_each_epoch_start() -> None:
    from prl_tune.schedulers import build_scheduler

    optimizer = _optimizer()
    scheduler = build_scheduler(
        "plrs", optimizer, epochs=4, steps_per_epoch=23, lr_min=0.01, lr_max=0.1, seed=0,
        draw_every="epoch",
    )  # fmt: skip
    assert isinstance(scheduler, PLRS) and scheduler.draw_every == 23
    lrs = [row[0] for row in _run(scheduler, optimizer, 4 * 23 - 1)]  # the 92 steps' LRs
    epochs = [lrs[e * 23 : (e + 1) * 23] for e in range(4)]
    assert all(len(set(epoch)) == 1 for epoch in epochs)
    assert len({epoch[0] for epoch in epochs}) == 4
    assert [epoch[0] for epoch in epochs] == list(_lrs(3, seed=0)[:, 0])


def test_the_training_loop_with_one_draw_per_epoch() -> None:
    from prl_tune.training import TaskData, train

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]  # 6 steps per epoch
    task = TaskData(
        model=torch.nn.Linear(4, 2),
        train_loader=batches,
        val_loader=batches[:1],
        loss_fn=torch.nn.functional.cross_entropy,
    )
    params = {"lr_min": 0.01, "lr_max": 0.1, "seed": 3}
    result = train(task, epochs=3, scheduler="plrs-epoch", scheduler_params=params)
    assert [m.lr_min == m.lr_max for m in result.history] == [True, True, True]
    assert [m.lr_min for m in result.history] == list(_lrs(2, seed=3)[:, 0])


# ------------------------------------------------------------------------------ resume


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize(
    ("draw_every", "save_at"),
    [(1, 0), (1, 1025), (8, 5), (8, 8), (8, 8199), (8, 8192 + 3), (1500, 1501)],
)
def test_resume_is_bit_exact(distribution: str, draw_every: int, save_at: int) -> None:
    # Mid-interval (5, 8195, 1501), at a draw (8) and after the 1024th draw (a new block).
    options = {"seed": 21, "distribution": distribution, "draw_every": draw_every}
    options["beta_shape"] = 3.0
    lows, highs, more = [0.01, 0.2], [0.1, 0.3], 40
    full = _run(*_with_groups(lows, highs, warmup_steps=4, **options), save_at + more)

    scheduler, optimizer = _with_groups(lows, highs, warmup_steps=4, **options)
    _run(scheduler, optimizer, save_at)
    state = _roundtrip(scheduler.state_dict())

    fresh, fresh_optimizer = _with_groups([0.0, 0.0], [1.0, 1.0], seed=99)  # the paper's PLRS
    fresh.load_state_dict(state)
    assert (fresh.distribution, fresh.draw_every, fresh.beta_shape) == (
        distribution,
        draw_every,
        3.0,
    )
    assert fresh.get_last_lr() == full[save_at]
    assert _run(fresh, fresh_optimizer, more) == full[save_at:]


def _with_groups(lows: list[float], highs: list[float], **kwargs: Any) -> tuple[PLRS, Any]:
    optimizer = _optimizer(len(lows))
    return PLRS(optimizer, lows, highs, **kwargs), optimizer


def test_a_state_of_version_1_resumes_as_the_paper_plrs() -> None:
    scheduler, optimizer = _with_optimizer(lr_min=0.01, lr_max=0.1, seed=8)
    full = _run(scheduler, optimizer, 60)
    scheduler, optimizer = _with_optimizer(lr_min=0.01, lr_max=0.1, seed=8)
    _run(scheduler, optimizer, 20)
    state = scheduler.state_dict()  # as saved before the choices existed
    state["version"] = 1
    for key in ("draw_every", "distribution", "beta_shape"):
        del state[key]
    fresh, fresh_optimizer = _with_optimizer(
        lr_min=0.5, lr_max=0.6, seed=1, draw_every=5, distribution="beta"
    )
    fresh.load_state_dict(state)
    assert (fresh.draw_every, fresh.distribution) == (1, "uniform")
    assert _run(fresh, fresh_optimizer, 40) == full[20:]


def test_load_refuses_a_state_with_a_bad_choice() -> None:
    scheduler, _ = _with_optimizer(lr_min=0.01, lr_max=0.1, seed=0)
    for key, value, match in [
        ("distribution", "normal", "distribution"),
        ("draw_every", 0, "draw_every"),
        ("version", 3, "version"),
    ]:
        state = scheduler.state_dict()
        state[key] = value
        with pytest.raises(ValueError, match=match):
            scheduler.load_state_dict(state)
    state = PLRS(_optimizer(), 0.0, 0.1, seed=0).state_dict()
    state["distribution"] = "log-uniform"
    with pytest.raises(ValueError, match="lr_min must be > 0 for distribution 'log-uniform'"):
        scheduler.load_state_dict(state)


# ---------------------------------------------------------------------------- bad arguments

_BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"draw_every": 0}, ValueError, "draw_every must be >= 1 but got 0."),
    ({"draw_every": -3}, ValueError, "draw_every must be >= 1 but got -3."),
    ({"draw_every": 1.5}, TypeError, "draw_every must be an integer >= 1 but got 1.5 (float)."),
    ({"draw_every": True}, TypeError, "draw_every must be an integer >= 1 but got True (bool)."),
    ({"draw_every": "epoch"}, TypeError, "draw_every must be an integer >= 1 but got 'epoch'"),
    (
        {"distribution": "normal"},
        ValueError,
        "distribution must be one of ['uniform', 'log-uniform', 'beta'] but got 'normal'.",
    ),
    ({"distribution": 3}, ValueError, "distribution must be one of"),
    ({"beta_shape": 0.0}, ValueError, "beta_shape must be a finite number > 0 but got 0.0."),
    ({"beta_shape": math.inf}, ValueError, "beta_shape must be a finite number > 0 but got inf."),
    ({"beta_shape": "2"}, TypeError, "beta_shape must be a finite number > 0 but got '2' (str)."),
    (
        {"distribution": "log-uniform", "lr_min": 0.0},
        ValueError,
        "lr_min must be > 0 for distribution 'log-uniform' (log(0) is undefined) but got 0.0.",
    ),
    (
        {"distribution": "log-uniform", "lr_min": [0.01, 0.0]},
        ValueError,
        "lr_min[1] must be > 0 for distribution 'log-uniform'",
    ),
]


@pytest.mark.parametrize(("overrides", "error", "message"), _BAD)
def test_bad_choices_are_refused_in_one_line(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    optimizer = _optimizer(2)
    kwargs: dict[str, Any] = {"lr_min": 0.01, "lr_max": 0.1, "seed": 0, **overrides}
    with pytest.raises(error) as info:
        PLRS(optimizer, **kwargs)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.5]  # untouched
