"""The comparison table, built from the store: per scheduler its tuning effort and best, its
scores over fresh seeds, and a confidence interval for its difference to the baseline."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from prl_tune.compare._evaluation import ENVIRONMENT_ATTR, TEST_METRICS, runs_of
from prl_tune.compare._plan import ComparisonPlan
from prl_tune.compare._tuning import best_trial, tuning_steps
from prl_tune.store import trial_attrs

#: Study user attribute of the evaluation study that holds the table (:meth:`ComparisonTable.
#: to_dict`), for reports to render.
TABLE_ATTR = "prl_tune.comparison"
#: The confidence level of the intervals.
CONFIDENCE = 0.95
#: "Within 1% of its own best": the tolerance, relative to the best value.
WITHIN = 0.01


@dataclass(frozen=True)
class SchedulerResult:
    """One scheduler's row of the table.

    Args:
        scheduler: its name.
        tuning_finished: its tuning trials that completed (over every tuning study).
        tuning_trials: its tuning trials in any state (pruned and failed ones too).
        tuning_best: the best tuning value (validation) of each tuning study (``None``: no
            complete trial).
        trials_to_within: for each tuning study, the trials it took (in order, pruned ones
            counted) to reach within 1% of that study's own best.
        tuning_steps: optimizer steps of every tuning trial, pruned and stopped ones included.
        scores: the scores of its evaluation runs (by tuning study, then seed); runs stopped as
            non-finite have none.
        study_means: the mean score of each tuning study's configuration.
        runs: evaluation runs done; ``runs - len(scores)`` were stopped as non-finite.
        runs_planned: evaluation runs the protocol asks for (seeds x studies with a best).
        evaluation_steps: optimizer steps of its evaluation runs.
        ci: the confidence interval of ``mean(scores) - mean(baseline's scores)`` (Welch's t),
            ``None`` for the baseline and where it cannot be computed.
        verdict: ``"baseline"``, ``"no significant difference"``, ``"better than X"``,
            ``"worse than X"``, or ``"n/a: ..."`` saying why there is no interval.
    """

    scheduler: str
    tuning_finished: int
    tuning_trials: int
    tuning_best: tuple[float | None, ...]
    trials_to_within: tuple[int | None, ...]
    tuning_steps: int
    scores: tuple[float, ...]
    study_means: tuple[float | None, ...]
    runs: int
    runs_planned: int
    evaluation_steps: int
    ci: tuple[float, float] | None
    verdict: str

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None


@dataclass(frozen=True)
class ComparisonTable:
    """The table of a comparison and what it rests on; :func:`build_table` builds it, and
    :meth:`to_dict` / :meth:`from_dict` store it on the evaluation study (:data:`TABLE_ATTR`).

    Args:
        study: the study's name.
        metric: the study's metric (what tuning selected by), and ``direction`` its direction.
        score: what the evaluation runs are scored by: ``"test_accuracy"`` or ``"test_loss"``
            on a test split, else the study's metric on the validation split.
        scored_on: ``"test"``, ``"validation"`` (the task has no test split) or ``"none"``
            (no evaluation run yet).
        baseline: the scheduler the intervals compare against.
        trials: tuning trials per scheduler and tuning study.
        tuning_seeds: the tuning studies' seeds; ``seeds`` the evaluation seeds.
        epochs: epochs of every run.
        sampler: the tuning sampler; ``pruner`` the base pruner each scheduler's study has.
        test_fraction: the share of samples in a built-in task's test split (``None``: a user
            task's own split, if any).
        rows: one :class:`SchedulerResult` per scheduler, in the order of ``[space]``.
        environments: the versions and device of each run of the comparison.
    """

    study: str
    metric: str
    direction: str
    score: str
    scored_on: str
    baseline: str
    trials: int
    tuning_seeds: tuple[int, ...]
    seeds: tuple[int, ...]
    epochs: int
    sampler: str
    pruner: str
    test_fraction: float | None
    rows: tuple[SchedulerResult, ...]
    environments: tuple[dict[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (rows as dicts, with their mean, sd and best)."""
        data = asdict(self)
        for row, result in zip(data["rows"], self.rows, strict=True):
            row.update(mean=result.mean, sd=result.sd, best=best_score(result, self.direction))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonTable:
        """The table :meth:`to_dict` gave (e.g. read back from the store)."""
        fields = dict(data)
        rows = []
        for row in fields.pop("rows"):
            values = {k: v for k, v in row.items() if k not in ("mean", "sd", "best")}
            for key in ("tuning_best", "trials_to_within", "scores", "study_means"):
                values[key] = tuple(values[key])
            values["ci"] = None if values["ci"] is None else tuple(values["ci"])
            rows.append(SchedulerResult(**values))
        for key in ("tuning_seeds", "seeds", "environments"):
            fields[key] = tuple(fields[key])
        return cls(**fields, rows=tuple(rows))

    def row(self, scheduler: str) -> SchedulerResult:
        return next(r for r in self.rows if r.scheduler == scheduler)


def best_score(row: SchedulerResult, direction: str) -> float | None:
    """The best of a row's scores."""
    if not row.scores:
        return None
    return max(row.scores) if direction == "maximize" else min(row.scores)


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
    )


def _row(
    plan: ComparisonPlan,
    scheduler: str,
    tuned: Mapping[tuple[str, int], optuna.Study],
    runs: list[optuna.trial.FrozenTrial],
) -> SchedulerResult:
    finished = total = steps = 0
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
