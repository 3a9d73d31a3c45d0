"""The comparison table, built from the store: per scheduler its tuning effort and best, its
scores over fresh seeds, and a confidence interval for its difference to the baseline."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace

import optuna
from optuna.trial import TrialState

from prl_tune.compare._evaluation import ENVIRONMENT_ATTR, runs_of
from prl_tune.compare._plan import ComparisonPlan
from prl_tune.compare._tuning import best_trial, tuning_steps
from prl_tune.report import CONFIDENCE, TEST_METRICS, ComparisonTable, SchedulerResult
from prl_tune.store import steps_used, trial_attrs

#: "Within 1% of its own best": the tolerance, relative to the best value.
WITHIN = 0.01


def welch_interval(
    scores: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Welch's t interval for ``mean(scores) - mean(baseline)`` (``scipy.stats.ttest_ind`` with
    ``equal_var=False``); ``None`` with fewer than two scores on either side or no spread."""
    if len(scores) < 2 or len(baseline) < 2:
        return None
    if len(set(scores)) == 1 and len(set(baseline)) == 1:  # no spread: no t distribution
        return None
    from scipy import stats

    with warnings.catch_warnings():  # one side without spread is fine for Welch's interval
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        result = stats.ttest_ind(scores, baseline, equal_var=False)
    interval = result.confidence_interval(confidence_level=confidence)
    low, high = float(interval.low), float(interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def build_table(
    plan: ComparisonPlan,
    tuned: Mapping[tuple[str, int], optuna.Study],
    evaluation: optuna.Study,
) -> ComparisonTable:
    """The table of ``plan`` from its tuning studies and its evaluation study (reads only)."""
    runs = list(runs_of(evaluation))
    rows = [_row(plan, scheduler, tuned, runs) for scheduler in plan.schedulers]
    scores = {row.scheduler: row.scores for row in rows}
    rows = [_with_interval(plan, row, scores[plan.baseline]) for row in rows]
    scored = {t.user_attrs.get("scored_on") for t in runs} - {None}  # None: stopped runs
    scored_on = "test" if "test" in scored else "validation" if scored else "none"
    if scored_on == "test":
        score = TEST_METRICS[plan.spec.metric]
    else:
        score = plan.spec.metric
    fraction = plan.spec.task.params.get("test_fraction") if plan.test_split else None
    return ComparisonTable(
        study=plan.name,
        metric=plan.spec.metric,
        direction=plan.spec.direction,
        score=score,
        scored_on=scored_on,
        baseline=plan.baseline,
        trials=plan.trials,
        tuning_seeds=plan.tuning_seeds,
        seeds=plan.seeds,
        epochs=plan.spec.task.epochs,
        sampler=plan.spec.study.sampler,
        pruner=plan.spec.pruning.base,
        test_fraction=None if fraction is None else float(fraction),
        rows=tuple(rows),
        environments=tuple(evaluation.user_attrs.get(ENVIRONMENT_ATTR, [])),
        budget=plan.budget,
        step_budget=plan.step_budget,
        trial_steps=plan.trial_steps,
        trial_cap=plan.tuning_trials if plan.step_budget is not None else None,
    )


def _row(
    plan: ComparisonPlan,
    scheduler: str,
    tuned: Mapping[tuple[str, int], optuna.Study],
    runs: list[optuna.trial.FrozenTrial],
) -> SchedulerResult:
    finished = total = steps = 0
    study_steps: list[int] = []
    bests: list[float | None] = []
    to_within: list[int | None] = []
    scores: list[float] = []
    means: list[float | None] = []
    done = planned = evaluation_steps = 0
    for repeat in range(plan.studies):
        study = tuned[(scheduler, repeat)]
        trials = study.get_trials(deepcopy=False)
        finished += sum(t.state == TrialState.COMPLETE for t in trials)
        total += len(trials)
        steps += tuning_steps(study)
        study_steps.append(steps_used(trials))
        best = best_trial(study)
        bests.append(None if best is None else best.value)
        to_within.append(_trials_to_within(study, plan.spec.direction, best))
        if best is None:
            means.append(None)
            continue
        planned += len(plan.seeds)
        own = [
            t
            for t in runs
            if t.user_attrs.get("tuning_study") == study.study_name
            and t.user_attrs.get("tuning_trial") == best.number
            and t.user_attrs.get("seed") in plan.seeds
        ]
        own.sort(key=lambda t: plan.seeds.index(t.user_attrs["seed"]))
        done += len(own)
        evaluation_steps += sum(int(t.user_attrs.get("steps", 0)) for t in own)
        values = [t.value for t in own if t.state == TrialState.COMPLETE and t.value is not None]
        scores.extend(values)  # finite: a non-finite score is stored as a stopped run
        means.append(statistics.fmean(values) if values else None)
    return SchedulerResult(
        scheduler=scheduler,
        tuning_finished=finished,
        tuning_trials=total,
        tuning_best=tuple(bests),
        trials_to_within=tuple(to_within),
        tuning_steps=steps,
        scores=tuple(scores),
        study_means=tuple(means),
        runs=done,
        runs_planned=planned,
        evaluation_steps=evaluation_steps,
        ci=None,
        verdict="",
        study_steps=tuple(study_steps),
    )


def _trials_to_within(
    study: optuna.Study, direction: str, best: optuna.trial.FrozenTrial | None
) -> int | None:
    """Trials (in order, any state) until the first complete, stable one within 1% of the
    study's own best."""
    if best is None or best.value is None:
        return None
    tolerance = WITHIN * abs(best.value)
    attrs = trial_attrs(study)
    for count, trial in enumerate(study.get_trials(deepcopy=False), start=1):
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        if attrs[trial.number].get("unstable") or not math.isfinite(trial.value):
            continue
        gap = best.value - trial.value if direction == "maximize" else trial.value - best.value
        if gap <= tolerance:
            return count
    return None


def _with_interval(
    plan: ComparisonPlan, row: SchedulerResult, baseline: tuple[float, ...]
) -> SchedulerResult:
    if row.scheduler == plan.baseline:
        return replace(row, verdict="baseline")
    interval = welch_interval(row.scores, baseline)
    if interval is None:
        if len(row.scores) < 2 or len(baseline) < 2:
            why = "n/a: needs 2 scores of each"
        elif statistics.fmean(row.scores) == statistics.fmean(baseline):
            why = "no difference (identical scores)"
        else:
            why = "n/a: no spread over seeds"
        return replace(row, verdict=why)
    low, high = interval
    if low <= 0 <= high:
        verdict = "no significant difference"
    else:
        better = (low > 0) == (plan.spec.direction == "maximize")
        verdict = f"{'better' if better else 'worse'} than {plan.baseline}"
    return replace(row, ci=interval, verdict=verdict)
