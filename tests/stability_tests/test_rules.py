from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest

from prl_tune.stability import VERDICT_KINDS, StabilityMonitor, StabilityRules, Verdict

CHANCE = math.log(10)
NAN = float("nan")
INF = float("inf")


def _feed(
    losses: Sequence[float],
    rules: StabilityRules | None = None,
    *,
    chance_loss: float | None = CHANCE,
) -> Verdict | None:
    """Feed ``losses`` in chunks of ``check_every``, as the training loop does."""
    rules = rules or StabilityRules()
    monitor = StabilityMonitor(rules, chance_loss=chance_loss)
    for start in range(0, len(losses), rules.check_every):
        verdict = monitor.observe(losses[start : start + rules.check_every], start + 1)
        if verdict is not None:
            return verdict
    return None


def _running(losses: Sequence[float], smoothing: float = 0.1) -> list[float]:
    """Reference running loss: the EMA started at the first loss."""
    values: list[float] = []
    for loss in losses:
        values.append(loss if not values else values[-1] + smoothing * (loss - values[-1]))
    return values


def _first_above(losses: Sequence[float], factor: float, reference: float) -> int:
    """The first 1-based step whose reference running loss is above ``factor x reference``."""
    return next(
        step for step, value in enumerate(_running(losses), start=1) if value > factor * reference
    )


def _exploded(losses: Sequence[float], reference: float, factor: float = 10.0) -> Verdict:
    """The explosion verdict the rules define, from the reference running loss."""
    step = _first_above(losses, factor, reference)
    running = _running(losses)[step - 1]
    return Verdict(
        "exploded",
        step,
        f"exploded: running loss {running:.4g} above {factor:g} x the reference "
        f"{reference:.4g} at step {step}",
    )


def _noise(count: int, level: float = CHANCE, amplitude: float = 0.02) -> list[float]:
    """A deterministic wobble of +-amplitude around ``level``."""
    return [level + amplitude * math.sin(1.7 * k) for k in range(count)]


# Learning a bit, then three bad steps: the running loss peaks at ~4 x the chance level.
_BEFORE_SPIKE = [3.0, 2.6, 2.3, 2.1]
_SPIKE = [40.0, 30.0, 20.0]


def _spike_then_recovery() -> list[float]:
    decay = [4.0 * (0.02 / 4.0) ** (k / 30) for k in range(31)]  # 4.0 down to 0.02
    return _BEFORE_SPIKE + _SPIKE + decay + _noise(300, 0.05, 0.03)


def _spike_then_chance() -> list[float]:
    return _BEFORE_SPIKE + _SPIKE + _noise(300)


# --- non-finite ---------------------------------------------------------------------------


def test_nan_at_the_first_step_stops_at_step_one() -> None:
    verdict = _feed([NAN])
    assert verdict == Verdict("non-finite", 1, "non-finite training loss (nan) at step 1")


def test_nan_from_the_first_step_on_stops_at_step_one() -> None:
    verdict = _feed([NAN] * 40)
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("non-finite", 1)


def test_infinity_stops_at_its_step() -> None:
    verdict = _feed([*_noise(10), INF, 2.3])
    assert verdict == Verdict("non-finite", 11, "non-finite training loss (inf) at step 11")


def test_nonfinite_off_skips_non_finite_steps() -> None:
    monitor = StabilityMonitor(StabilityRules(nonfinite=False), chance_loss=CHANCE)
    assert monitor.observe([2.0, NAN, INF, 2.0], first_step=1) is None
    assert monitor.running_loss == pytest.approx(2.0)


# --- explosion ----------------------------------------------------------------------------


def test_a_jump_to_20_times_the_chance_level_is_stopped_within_one_check() -> None:
    losses = _noise(16) + [20 * CHANCE] * 16
    verdict = _feed(losses)
    # The running loss needs 7 steps of the jump to pass 10 x the chance level: step 23.
    assert verdict == _exploded(losses, CHANCE)
    assert verdict.step == 23


def test_a_single_huge_loss_is_stopped_at_its_step() -> None:
    verdict = _feed([*_noise(5), 1e6])
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("exploded", 6)


def test_explosion_can_be_disabled() -> None:
    assert _feed([*_noise(5), 1e6, 1e6], StabilityRules(explode_factor=None)) is None


def test_without_chance_level_the_reference_is_the_first_loss() -> None:
    losses = [0.5, *[0.45] * 8, *[6.0] * 40]  # regression-like: 12 x the first loss
    verdict = _feed(losses, chance_loss=None)
    assert verdict == _exploded(losses, 0.5)
    assert "reference 0.5 " in verdict.reason


def _feed_with(losses: Sequence[float], **monitor: Any) -> Verdict | None:
    """``_feed`` with the monitor's keyword arguments (``known_to_learn``, ...)."""
    rules = StabilityRules()
    watcher = StabilityMonitor(rules, chance_loss=monitor.pop("chance_loss", CHANCE), **monitor)
    for start in range(0, len(losses), rules.check_every):
        verdict = watcher.observe(losses[start : start + rules.check_every], start + 1)
        if verdict is not None:
            return verdict
    return None


# AdamW-like: a spike of ~1000 x that decays back below the reference within ~20 steps.
_SURVIVED_SPIKE = [2.3, *[2500.0 * 0.6**k for k in range(20)], *_noise(200, 1.0)]


def test_a_stateful_optimizer_gets_time_to_recover_from_a_spike() -> None:
    rules = StabilityRules()
    plain = _feed_with(_SURVIVED_SPIKE)
    assert plain is not None and (plain.kind, plain.step) == ("exploded", 2)
    assert _feed_with(_SURVIVED_SPIKE, stateful_optimizer=True) is None
    # ... but a loss that stays exploded is stopped once the window has seen it.
    stays = [2.3, *[500.0] * 100]
    verdict = _feed_with(stays, stateful_optimizer=True)
    assert verdict is not None
    # The median of the last window of losses (the first one among them) is 500 at once.
    assert (verdict.kind, verdict.step) == ("exploded", rules.explode_window_stateful)
    assert f"the median of the last {rules.explode_window_stateful} step losses 500" in (
        verdict.reason
    )


def test_a_loss_that_stays_several_times_too_high_is_sustained() -> None:
    rules = StabilityRules()
    assert rules.sustain_factor is not None
    high = rules.sustain_factor * 1.3 * CHANCE  # above sustain_factor x, below explode_factor x
    losses = [2.3, *[high] * 200]
    running = _running(losses)
    first = next(s for s, v in enumerate(running, 1) if v > rules.sustain_factor * CHANCE)
    verdict = _feed(losses)
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("sustained", first + rules.sustain_window - 1)
    assert verdict.reason.startswith(f"sustained: running loss above {rules.sustain_factor:g} x")
    # Lower than sustain_factor x: never.
    assert _feed([2.3, *[0.8 * rules.sustain_factor * CHANCE] * 300]) is None


def test_a_run_flat_at_chance_is_dead_only_when_a_gentler_range_learned() -> None:
    rules = StabilityRules()
    assert rules.dead_window is not None
    flat = [2.31, *_noise(200, CHANCE, 0.05)]
    assert _feed_with(flat) is None  # it may be slow: nothing says otherwise
    verdict = _feed_with(flat, known_to_learn=True)
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("dead", rules.dead_window)
    assert verdict.reason == (
        f"dead: loss never below the chance level 2.303 in {rules.dead_window} steps; a gentler "
        "range learned"
    )


def test_a_slow_run_that_learns_within_the_window_is_not_dead() -> None:
    rules = StabilityRules()
    slow = [2.4 - 0.012 * k for k in range(150)]  # 10 % below chance by step ~38
    monitor = StabilityMonitor(rules, chance_loss=CHANCE, known_to_learn=True)
    assert monitor.observe(slow, first_step=1) is None
    learned = next(
        s
        for s, v in enumerate(_running(slow), 1)
        if v < (1 - rules.dead_tolerance) * min(CHANCE, slow[0])
    )
    assert monitor.learned_at == learned
    assert learned < (rules.dead_window or 0)


def test_dead_is_counted_from_the_end_of_a_spike() -> None:
    rules = StabilityRules()
    assert rules.dead_window is not None
    # After the spike the loss stays above the chance band (no collapse) and never learns.
    losses = [2.3, *[4 * rules.spike_factor * CHANCE] * 10, *_noise(300, 1.3 * CHANCE, 0.05)]
    running = _running(losses)
    spike_level = rules.spike_factor * CHANCE
    calm = next(s for s in range(12, len(losses) + 1) if running[s - 1] <= spike_level)
    verdict = _feed_with(losses, known_to_learn=True)
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("dead", calm + rules.dead_window)
    assert f"after its spike (to step {calm})" in verdict.reason


def test_without_chance_level_dead_means_never_below_the_first_loss() -> None:
    rules = StabilityRules()
    flat = [1.0, *[1.0 + 0.05 * math.sin(k) for k in range(100)]]
    verdict = _feed_with(flat, chance_loss=None, known_to_learn=True)
    assert verdict is not None and verdict.kind == "dead"
    assert "never below the first loss 1 " in verdict.reason
    falling = [1.0 * 0.99**k for k in range(100)]
    assert _feed_with(falling, chance_loss=None, known_to_learn=True) is None
    assert rules.dead_window is not None


def test_a_run_that_learned_a_little_and_fell_back_to_its_level_is_dead() -> None:
    rules = StabilityRules()
    assert rules.dead_window is not None
    # Down to 0.85x chance (learned, but not "well": no collapse), then back above chance.
    dip = [CHANCE - 0.04 * k for k in range(10)] + [0.85 * CHANCE] * 30
    losses = [*dip, *_noise(300, 1.05 * CHANCE, 0.02)]
    running = _running(losses)
    learned = next(s for s, v in enumerate(running, 1) if v < (1 - rules.dead_tolerance) * CHANCE)
    last_below = max(s for s, v in enumerate(running, 1) if v < CHANCE)
    assert _feed_with(losses) is None  # without a gentler range that learned: left alone
    monitor = StabilityMonitor(rules, chance_loss=CHANCE, known_to_learn=True)
    verdict = monitor.observe(losses, first_step=1)
    assert monitor.learned_at == learned
    assert verdict is not None
    assert (verdict.kind, verdict.step) == ("dead", last_below + rules.dead_window)
    assert verdict.reason == (
        f"dead: loss back at or above the chance level 2.303 for {rules.dead_window} steps "
        f"(since step {last_below}) after it learned at step {learned}; a gentler range learned"
    )
    # The same dip followed by a plateau below the level (a run that learned and stays) runs on.
    staying = [*dip, *_noise(300, 0.95 * CHANCE, 0.02)]
    assert _feed_with(staying, known_to_learn=True) is None


# --- collapse -----------------------------------------------------------------------------


def test_a_recovered_spike_is_not_stopped() -> None:
    losses = _spike_then_recovery()
    reference = max(CHANCE, losses[0])
    assert max(_running(losses)) > StabilityRules().spike_factor * reference  # a real spike
    assert _feed(losses) is None


def test_a_spike_then_chance_plateau_is_stopped_as_collapsed() -> None:
    rules = StabilityRules()
    assert rules.collapse_window is not None
    losses = _spike_then_chance()
    running = _running(losses)
    assert max(running) > rules.spike_factor * max(CHANCE, losses[0])
    peak_step = running.index(max(running)) + 1
    # The band is judged on the faster running loss, once the slow one has left the spike.
    fast = _running(losses, rules.collapse_smoothing)
    band = rules.collapse_tolerance * CHANCE
    spike_level = rules.spike_factor * max(CHANCE, losses[0])
    entered = next(
        step
        for step, (slow, quick) in enumerate(zip(running, fast, strict=True), start=1)
        if step > peak_step and slow <= spike_level and abs(quick - CHANCE) <= band
    )
    verdict = _feed(losses, rules)
    assert verdict is not None
    assert verdict.kind == "collapsed"
    assert verdict.step == entered + rules.collapse_window - 1
    # The loop checks every check_every steps, so it stops at most that much later.
    assert verdict.step < entered + rules.collapse_window + rules.check_every
    assert verdict.reason == (
        f"collapsed: loss back at chance level 2.303 for {rules.collapse_window} steps after a "
        f"spike to {max(running):.4g} at step {peak_step}"
    )


def test_collapse_window_sets_how_long_the_plateau_must_last() -> None:
    short = _feed(_spike_then_chance(), StabilityRules(collapse_window=8))
    long = _feed(_spike_then_chance(), StabilityRules(collapse_window=64))
    assert short is not None and long is not None
    assert long.step - short.step == 64 - 8


def test_a_slow_starter_near_chance_without_a_spike_is_not_stopped() -> None:
    losses = [2.35 - 0.0005 * k + 0.05 * math.sin(1.3 * k) for k in range(600)]
    assert _feed(losses) is None


def test_a_high_initial_loss_is_not_a_spike() -> None:
    # Starts at 3 x chance (a poor initialization), falls to chance and stays there for long.
    losses = [7.0] * 4 + [7.0 - 0.2 * k for k in range(24)] + _noise(400)
    assert _feed(losses) is None


def test_a_run_that_learned_and_goes_back_to_chance_level_collapses() -> None:
    """Momentum runs that learned and then fell back to predicting the prior (the corpus has
    them) are collapses too, without a spike before."""
    rules = StabilityRules()
    assert rules.collapse_window is not None
    learned = [2.4 - 0.03 * k for k in range(40)]  # down to 1.23, well below the chance band
    losses = learned + _noise(200)
    fast = _running(losses, rules.collapse_smoothing)
    band = rules.collapse_tolerance * CHANCE
    entered = next(
        step for step in range(41, len(losses) + 1) if abs(fast[step - 1] - CHANCE) <= band
    )
    below = next(
        step
        for step, value in enumerate(_running(losses), start=1)
        if value < (1 - 2 * rules.collapse_tolerance) * CHANCE
    )
    assert _feed(losses, rules) == Verdict(
        "collapsed",
        entered + rules.collapse_window - 1,
        f"collapsed: loss back at chance level 2.303 for {rules.collapse_window} steps after "
        f"learning (well below it at step {below})",
    )


def test_learning_a_little_then_a_plateau_near_chance_is_not_a_collapse() -> None:
    # Slow runs dip below the chance level and hover there: not far enough to count as learned.
    losses = [2.35 - 0.01 * k for k in range(30)] + _noise(300, 2.1)
    assert _feed(losses) is None


def test_collapse_needs_the_chance_level() -> None:
    assert _feed(_spike_then_chance(), chance_loss=None) is None


def test_collapse_can_be_disabled() -> None:
    assert _feed(_spike_then_chance(), StabilityRules(collapse_window=None)) is None


# --- rise ---------------------------------------------------------------------------------


def _slow_rise() -> list[float]:
    return [1.0] * 50 + [1.0 * 1.02**k for k in range(200)]  # x52 after 200 steps


def test_a_slow_rise_is_stopped_by_the_rise_rule() -> None:
    rules = StabilityRules(rise_window=32, rise_factor=2.0, explode_factor=None)
    losses = _slow_rise()
    verdict = _feed(losses, rules)
    assert verdict is not None
    assert verdict.kind == "rising"
    running = _running(losses)
    # The first step whose last 32 running losses are all above 2 x the best before them.
    expected = next(
        step
        for step in range(34, len(losses) + 1)
        if min(running[step - 32 : step]) > 2.0 * min(running[: step - 32])
    )
    assert verdict.step == expected
    assert f"for 32 steps (steps {expected - 31}-{expected})" in verdict.reason


def test_a_slow_rise_is_not_a_rise_by_default_but_explodes_in_the_end() -> None:
    losses = _slow_rise()
    assert _feed(losses) == _exploded(losses, CHANCE)  # reference: chance > the first loss
    assert StabilityRules().rise_window is None


def test_a_falling_loss_never_rises() -> None:
    losses = [3.0 * 0.99**k for k in range(400)]
    assert _feed(losses, StabilityRules(rise_window=16, rise_factor=1.01)) is None


# --- the monitor --------------------------------------------------------------------------


def test_running_loss_is_the_ema_from_the_first_loss() -> None:
    monitor = StabilityMonitor(StabilityRules(smoothing=0.5))
    assert monitor.running_loss is None
    monitor.observe([2.0, 4.0], first_step=1)
    assert monitor.running_loss == pytest.approx(3.0)


def test_a_verdict_is_kept() -> None:
    monitor = StabilityMonitor(StabilityRules())
    first = monitor.observe([2.0, NAN], first_step=1)
    assert first is not None
    assert monitor.observe([2.0], first_step=3) is first
    assert monitor.verdict is first


def test_steps_may_skip_ahead_but_not_go_back() -> None:
    monitor = StabilityMonitor(StabilityRules())
    monitor.observe([2.0] * 8, first_step=1)
    assert monitor.observe([2.0] * 8, first_step=17) is None
    with pytest.raises(ValueError, match="first_step must be > the last step observed"):
        monitor.observe([2.0], first_step=24)
    with pytest.raises(ValueError, match="first_step"):
        StabilityMonitor(StabilityRules()).observe([2.0], first_step=-1)
    # Step 0 is a step (Optuna's reports may start there).
    assert StabilityMonitor(StabilityRules()).observe([2.0], first_step=0) is None


def test_empty_chunks_are_fine() -> None:
    monitor = StabilityMonitor(StabilityRules())
    assert monitor.observe([], first_step=1) is None
    assert monitor.observe([2.0], first_step=1) is None


@pytest.mark.parametrize(
    ("rules", "losses"),
    [
        (StabilityRules(), _spike_then_chance()),
        (StabilityRules(), _spike_then_recovery()),
        (StabilityRules(rise_window=32, rise_factor=2.0, explode_factor=None), _slow_rise()),
    ],
)
def test_state_dict_round_trips_through_json(rules: StabilityRules, losses: list[float]) -> None:
    whole = _feed(losses, rules)
    first = StabilityMonitor(rules, chance_loss=CHANCE)
    first.observe(losses[:40], first_step=1)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = StabilityMonitor(rules, chance_loss=CHANCE)
    second.load_state_dict(state)
    assert second.state_dict() == first.state_dict()
    assert second.running_loss == first.running_loss
    resumed = None
    for start in range(40, len(losses), rules.check_every):
        resumed = second.observe(losses[start : start + rules.check_every], start + 1)
        if resumed is not None:
            break
    assert resumed == whole


def test_a_resumed_monitor_keeps_the_dead_clock_after_learning() -> None:
    dip = [CHANCE - 0.04 * k for k in range(10)] + [0.85 * CHANCE] * 30
    losses = [*dip, *_noise(300, 1.05 * CHANCE, 0.02)]
    whole = StabilityMonitor(StabilityRules(), chance_loss=CHANCE, known_to_learn=True)
    expected = whole.observe(losses, first_step=1)
    assert expected is not None and expected.kind == "dead"
    first = StabilityMonitor(StabilityRules(), chance_loss=CHANCE, known_to_learn=True)
    first.observe(losses[:80], first_step=1)  # learned, and back at chance for a while
    second = StabilityMonitor(StabilityRules(), chance_loss=CHANCE, known_to_learn=True)
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert second.observe(losses[80:], first_step=81) == expected


def test_state_dict_keeps_the_verdict() -> None:
    monitor = StabilityMonitor(StabilityRules())
    verdict = monitor.observe([NAN], first_step=1)
    other = StabilityMonitor(StabilityRules())
    other.load_state_dict(monitor.state_dict())
    assert other.observe([2.0], first_step=2) == verdict


def test_load_state_dict_rejects_another_version_or_chance_level() -> None:
    state = StabilityMonitor(StabilityRules(), chance_loss=CHANCE).state_dict()
    with pytest.raises(ValueError, match="state version must be 3 but got 1"):
        StabilityMonitor(StabilityRules(), chance_loss=CHANCE).load_state_dict(
            {**state, "version": 1}
        )
    with pytest.raises(ValueError, match="chance_loss"):
        StabilityMonitor(StabilityRules(), chance_loss=math.log(4)).load_state_dict(state)


def test_monitor_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="rules must be a StabilityRules"):
        StabilityMonitor({"check_every": 8})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chance_loss must be a finite number > 0"):
        StabilityMonitor(StabilityRules(), chance_loss=-1.0)


# --- the rules ----------------------------------------------------------------------------


def test_verdict_kinds() -> None:
    assert VERDICT_KINDS == ("non-finite", "exploded", "sustained", "collapsed", "dead", "rising")


def test_rules_round_trip_through_a_mapping() -> None:
    rules = StabilityRules(check_every=4, explode_factor=None, rise_window=64)
    data = rules.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert StabilityRules.from_mapping(data) == rules
    assert StabilityRules.from_mapping({}) == StabilityRules()


def test_rules_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        StabilityRules().check_every = 4  # type: ignore[misc]


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(
        ValueError, match=r"explode_fator unknown key \(did you mean 'explode_factor'\?\)"
    ):
        StabilityRules.from_mapping({"explode_fator": 5.0})
    with pytest.raises(TypeError, match="must be a mapping"):
        StabilityRules.from_mapping([("check_every", 4)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("check_every", 0, ValueError, "check_every must be >= 1 but got 0."),
        (
            "check_every",
            2.0,
            TypeError,
            r"check_every must be an integer >= 1 but got \S+ \((float|bool)\)",
        ),
        (
            "check_every",
            True,
            TypeError,
            r"check_every must be an integer >= 1 but got \S+ \((float|bool)\)",
        ),
        ("nonfinite", 1, TypeError, "nonfinite must be a bool"),
        ("explode_factor", -1.0, ValueError, "explode_factor must be a finite number > 1 or"),
        ("explode_factor", NAN, ValueError, "explode_factor must be a finite number > 1"),
        ("explode_factor", INF, ValueError, "explode_factor must be a finite number > 1"),
        ("explode_factor", 1.0, ValueError, "explode_factor must be a finite number > 1"),
        ("explode_factor", "10", TypeError, "explode_factor must be a finite number"),
        ("spike_factor", None, TypeError, "spike_factor must be a finite number > 1"),
        ("spike_factor", 0.5, ValueError, "spike_factor must be a finite number > 1"),
        ("collapse_window", 0, ValueError, "collapse_window must be >= 1 or None but got 0."),
        ("collapse_window", -5, ValueError, "collapse_window must be >= 1 or None"),
        (
            "collapse_window",
            32.0,
            TypeError,
            r"collapse_window must be an integer >= 1 or None but got 32.0 \(float\)",
        ),
        ("collapse_tolerance", 0.0, ValueError, r"collapse_tolerance must be .* in \(0, 1\)"),
        ("collapse_tolerance", 1.0, ValueError, "collapse_tolerance"),
        ("collapse_tolerance", NAN, ValueError, "collapse_tolerance"),
        ("rise_window", 0, ValueError, "rise_window must be >= 1 or None but got 0."),
        ("rise_factor", -2.0, ValueError, "rise_factor must be a finite number > 1"),
        ("smoothing", 0.0, ValueError, r"smoothing must be a finite number in \(0, 1\]"),
        ("smoothing", 1.5, ValueError, "smoothing"),
        ("smoothing", NAN, ValueError, "smoothing"),
        (
            "collapse_smoothing",
            0.0,
            ValueError,
            r"collapse_smoothing must be a finite number in \(0, 1\] but got 0.0.",
        ),
        ("collapse_smoothing", INF, ValueError, "collapse_smoothing"),
        ("explode_window", 0, ValueError, "explode_window must be >= 1 but got 0."),
        ("explode_window_stateful", 0, ValueError, "explode_window_stateful must be >= 1"),
        ("sustain_factor", 1.0, ValueError, "sustain_factor must be a finite number > 1"),
        ("sustain_window", 0, ValueError, "sustain_window must be >= 1 but got 0."),
        ("dead_window", 0, ValueError, "dead_window must be >= 1 or None but got 0."),
        ("dead_tolerance", 1.0, ValueError, r"dead_tolerance must be a finite number in \[0, 1\)"),
        ("dead_tolerance", -0.1, ValueError, "dead_tolerance"),
    ],
)
def test_bad_thresholds_are_rejected_by_name(
    field: str, value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        StabilityRules(**{field: value})
    assert "\n" not in str(raised.value)
    with pytest.raises(error, match=field):
        StabilityRules.from_mapping({field: value})


def test_edge_values_are_accepted() -> None:
    rules = StabilityRules(check_every=1, smoothing=1.0, collapse_window=1, rise_window=1)
    assert rules.smoothing == 1.0
