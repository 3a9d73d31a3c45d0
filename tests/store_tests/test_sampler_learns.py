"""The sampler learns from unstable trials: recorded the prl_tune way, TPE avoids their region.

prl_tune records a diverged trial with :func:`prl_tune.store.mark_unstable` (the constraint
``unstable = 1.0``, so TPE ranks it below every feasible trial) and tells it PRUNED. A trial told
FAIL instead is ignored by the samplers. This test runs both ways on a synthetic objective (no
training) and checks that the prl_tune way samples the unstable region less often.

Objective: ``lr_max`` log-uniform in ``[1e-3, 10]`` and ``lr_min_ratio`` uniform in ``[0.05, 1]``
(the study's own ``PLRSSpace`` suggests them). ``lr_max > 0.5`` is unstable; below it the value is
accuracy-like and rises with ``lr_max`` up to the threshold, so the best trials lie right below
the unstable region, as in real tuning. Without information on the unstable trials, TPE is drawn
towards that boundary and across it; that is what makes the comparison meaningful.

Both arms use the sampler of :func:`prl_tune.store.make_sampler` (multivariate TPE, seeded by
the spec, ``n_startup_trials = max(2, min(10, n_trials // 3)) = 10``), the same seed per pair,
40 trials, 12 seeds (0..11). The unstable region is a third (1.3 of 4 decades, 32.5 %) of the prior.

Measured (seeds 0..11, deterministic), unstable samples among the 30 trials after the startup ones:

- arm A (``mark_unstable`` + PRUNED): 10 13 9 13 10 12 12 10 12 12 8 14 -> 135/360 = 37.5 %
- arm B (FAIL):                       24 30 28 28 24 28 26 27 27 27 25 24 -> 318/360 = 88.3 %

A is lower on all 12 seeds (exact one-sided sign test p = 2**-12 = 2.4e-4); the mean reduction is
50.8 percentage points. Best value found: A above B on all 12 seeds, mean 0.937 vs 0.900 (+0.036).
(On seeds 100..111 the picture is the same: 37.5 % vs 86.7 %, A lower on all 12; best value A
higher on 10, equal on 1, lower on 1, mean +0.033.)

What this does and does not attribute: it compares prl_tune's whole recording (PRUNED with the
constraint) against FAIL. Telling the same trials PRUNED *without* the constraint gave exactly the
same counts here (also with an intermediate value reported first): TPE fills its "good" group from
COMPLETE trials first, then PRUNED, then infeasible ones, so as long as there are more COMPLETE
trials than that group holds, an unstable trial lands in the "bad" group either way. The
constraint only changes the ranking when COMPLETE trials are too few to fill the good group.

Assertions and tolerances:

- sign test on the per-seed counts (A < B), one-sided, p < 0.01 (needs >= 11 of 12 wins if no
  ties: p(11 of 12) = 13/4096 = 0.0032, p(10 of 12) = 0.019);
- mean unstable fraction of A at least 25 percentage points below B's (about half the measured
  50.8);
- best value: mean of A at least 0.015 above B's (about 40 % of the measured 0.036), and A at least
  as good as B on a majority of seeds;
- and, so that none of this passes vacuously, A's unstable trials carry the constraint and are
  PRUNED, B's are FAIL with no constraint, and both arms have unstable and stable trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from prl_tune.config import StudySpec
from prl_tune.stability import StopRecord
from prl_tune.store import CONSTRAINT_KEY, make_sampler, mark_unstable

N_TRIALS = 40
SEEDS = tuple(range(12))
STARTUP = max(2, min(10, N_TRIALS // 3))  # as make_sampler sets n_startup_trials
THRESHOLD = 0.5  # lr_max above this is unstable
LR_MAX = (1e-3, 10.0)
STOP = StopRecord("rules", "exploded", "exploded", 3)


def _accuracy(lr_max: float, ratio: float) -> float:
    """Smooth, rising in ``lr_max`` up to the threshold (0.5 -> 0.95), mildly best at ratio 0.3."""
    x = (math.log(lr_max) - math.log(LR_MAX[0])) / (math.log(THRESHOLD) - math.log(LR_MAX[0]))
    return 0.5 + 0.45 * x - 0.05 * (ratio - 0.3) ** 2


@dataclass(frozen=True)
class Arm:
    trials: list[FrozenTrial]

    @property
    def unstable_after_startup(self) -> int:
        return sum(t.params["lr_max"] > THRESHOLD for t in self.trials[STARTUP:])

    @property
    def best(self) -> float:
        return max(t.value for t in self.trials if t.state == TrialState.COMPLETE)


def _run(seed: int, *, infeasible: bool) -> Arm:
    spec = StudySpec.from_dict(
        {
            "study": {"name": "s", "n_trials": N_TRIALS, "seed": seed},
            "task": {"epochs": 1},
            "space": {"lr_max": list(LR_MAX), "lr_min_ratio": [0.05, 1.0]},
        }
    )
    space = spec.space.plrs
    assert space.param_names == ("lr_max", "lr_min_ratio")
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec))
    for _ in range(N_TRIALS):
        trial = study.ask()
        bounds = space.suggest(trial)
        if bounds["lr_max"] <= THRESHOLD:
            study.tell(trial, _accuracy(bounds["lr_max"], trial.params["lr_min_ratio"]))
        elif infeasible:  # the prl_tune way (hosts/optuna/_objective.py)
            mark_unstable(trial, STOP)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, state=TrialState.FAIL)
    return Arm(study.get_trials())


@pytest.fixture(scope="module")
def arms() -> list[tuple[Arm, Arm]]:
    """Per seed: (arm A: marked unstable and PRUNED, arm B: FAIL)."""
    return [(_run(seed, infeasible=True), _run(seed, infeasible=False)) for seed in SEEDS]


def _sign_test_p(wins: int, losses: int) -> float:
    """Exact one-sided sign test: P(at least ``wins`` of ``wins + losses`` fair coin flips)."""
    n = wins + losses
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def test_unstable_trials_are_infeasible_only_when_marked(arms: list[tuple[Arm, Arm]]) -> None:
    for a, b in arms:
        for trial in a.trials:
            if trial.params["lr_max"] > THRESHOLD:
                assert trial.state == TrialState.PRUNED
                assert trial.constraints == {CONSTRAINT_KEY: 1.0}
                assert trial.user_attrs["unstable"] is True
            else:
                assert trial.state == TrialState.COMPLETE and trial.constraints == {}
        for trial in b.trials:
            assert trial.constraints == {}
            unstable = trial.params["lr_max"] > THRESHOLD
            assert trial.state == (TrialState.FAIL if unstable else TrialState.COMPLETE)
    # Both regions are sampled in both arms: the comparison below is not about empty sets.
    assert all(a.unstable_after_startup > 0 and b.unstable_after_startup > 0 for a, b in arms)
    assert all(a.unstable_after_startup < N_TRIALS - STARTUP for a, _ in arms)


def test_tpe_samples_the_unstable_region_less_when_it_is_infeasible(
    arms: list[tuple[Arm, Arm]],
) -> None:
    counts = [(a.unstable_after_startup, b.unstable_after_startup) for a, b in arms]
    print("unstable after startup (A marked, B FAIL):", counts)
    wins = sum(a < b for a, b in counts)
    losses = sum(a > b for a, b in counts)
    p = _sign_test_p(wins, losses)
    assert p < 0.01, f"sign test p = {p:.3g} ({wins} wins, {losses} losses): {counts}"

    after = len(SEEDS) * (N_TRIALS - STARTUP)
    fraction_a = sum(a for a, _ in counts) / after
    fraction_b = sum(b for _, b in counts) / after
    assert fraction_b - fraction_a >= 0.25, f"A {fraction_a:.1%} vs B {fraction_b:.1%}"


def test_marking_unstable_trials_does_not_lose_the_best_value(
    arms: list[tuple[Arm, Arm]],
) -> None:
    best = [(a.best, b.best) for a, b in arms]
    print("best value (A marked, B FAIL):", [(round(a, 3), round(b, 3)) for a, b in best])
    mean_gain = sum(a - b for a, b in best) / len(best)
    assert mean_gain >= 0.015, f"mean best A - B = {mean_gain:.3f}: {best}"
    assert sum(a >= b for a, b in best) > len(best) / 2
