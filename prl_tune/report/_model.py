"""What a report says about a study, read from the store through Optuna's public API only."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from prl_tune.report._comparison import TEST_METRICS, ComparisonTable, stored_table
from prl_tune.stability import describe_boundary
from prl_tune.store import (
    SPEC_ATTR,
    STEP_BUDGET_ATTR,
    stability_boundary,
    stored_range_test,
    trial_attrs,
)

#: The kinds of outcome a report counts, in the order it lists them.
OUTCOMES = (
    "complete",
    "pruned by the rules",
    "pruned by the memory",
    "pruned by the base pruner",
    "failed",
    "running",
)
_MIN_TRIALS_FOR_IMPORTANCE = 8
#: PLRS's hidden choices, as a trial records them (only those other than the paper's).
_PLRS_CHOICES = ("draw_every", "distribution", "beta_shape")


def outcome(trial: FrozenTrial, attrs: dict[str, Any]) -> str:
    """One of :data:`OUTCOMES` for a trial (with its merged user attributes)."""
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        by = attrs.get("pruned_by", "base")
        return {"rules": "pruned by the rules", "memory": "pruned by the memory"}.get(
            str(by), "pruned by the base pruner"
        )
    if trial.state == TrialState.FAIL:
        return "failed"
    return "running"


@dataclass(frozen=True)
class TrialView:
    """One trial as a report shows it."""

    number: int
    outcome: str
    value: float | None
    scheduler: str
    lr_min: float | None
    lr_max: float | None
    lr: float | None
    attrs: dict[str, Any]
    intermediate: dict[int, float]

    @property
    def lr_center(self) -> float | None:
        if self.lr_min is None or self.lr_max is None:
            return None
        return (self.lr_min + self.lr_max) / 2

    def copy_line(self, epochs: int | None) -> str:
        """A line of Python that builds this trial's scheduler (a PLRS variant, or PLRS with
        one draw per epoch, through ``build_scheduler``, which knows the steps per epoch)."""
        epochs_text = "EPOCHS" if epochs is None else str(epochs)
        budget = f"epochs={epochs_text}, steps_per_epoch=len(train_loader)"
        if self.lr_min is not None and self.lr_max is not None:
            # PLRS's choices other than the paper's (on the trial when searched or fixed).
            choices = {k: self.attrs[k] for k in _PLRS_CHOICES if k in self.attrs}
            if choices.get("draw_every") == "step":
                del choices["draw_every"]
            bounds = f"lr_min={self.lr_min:.4g}, lr_max={self.lr_max:.4g}"
            bounds += "".join(f", {key}={value!r}" for key, value in choices.items())
            if self.scheduler == "plrs" and choices.get("draw_every") != "epoch":
                return f"PLRS(optimizer, {bounds})"
            return f'build_scheduler("{self.scheduler}", optimizer, {bounds}, {budget})'
        lr = self.lr if self.lr is not None else self.lr_max
        return f'build_scheduler("{self.scheduler}", optimizer, lr={_num(lr)}, {budget})'


@dataclass(frozen=True)
class SchedulerRow:
    """The paper's comparison table, one scheduler: trials, best, mean (sd), trials to 1%."""

    scheduler: str
    trials: int
    best: float | None
    mean: float | None
    sd: float | None
    to_within_1pct: int | None
    best_trial: TrialView | None


@dataclass(frozen=True)
class StudyReport:
    """Everything a report of one study shows; build it with :func:`build_report`.

    ``metric`` names the trials' values: the study's metric, or for the evaluation study of a
    comparison what its runs were scored by (``test_accuracy`` on a test split). ``comparison``
    is the table such a study holds (``None``: none); ``evaluation`` says that the study holds
    a comparison's evaluation runs (its trials are runs of tuned configurations, not a search).
    ``step_budget`` is a budget in optimizer steps the study was run with, if any.
    """

    study_name: str
    metric: str
    direction: str
    spec: dict[str, Any] | None
    trials: list[TrialView]
    counts: dict[str, int]
    states: dict[str, int]
    reasons: dict[str, int]
    taught: dict[str, int]
    backends: dict[str, int]
    epochs: int
    steps: int
    unstable_steps: int
    best: TrialView | None
    schedulers: list[SchedulerRow]
    boundary: list[str]
    importances: dict[str, float] | None
    importance_note: str
    range_test: Any = field(default=None, repr=False)
    comparison: ComparisonTable | None = None
    evaluation: bool = False
    step_budget: int | None = None

    @property
    def task(self) -> str:
        return str((self.spec or {}).get("task", {}).get("name", "unknown"))

    @property
    def budget(self) -> int | None:
        """The trial budget (``None`` for a comparison's evaluation study: it has none)."""
        budget = (self.spec or {}).get("study", {}).get("n_trials")
        return budget if isinstance(budget, int) and not self.evaluation else None

    @property
    def epochs_per_trial(self) -> int | None:
        epochs = (self.spec or {}).get("task", {}).get("epochs")
        return epochs if isinstance(epochs, int) else None

    @property
    def made_by_prl_tune(self) -> bool:
        return self.spec is not None

    def top(self, count: int = 5) -> list[TrialView]:
        """The best complete trials, best first."""
        complete = [t for t in self.trials if t.outcome == "complete" and _finite(t.value)]
        reverse = self.direction == "maximize"
        return sorted(complete, key=_value, reverse=reverse)[:count]


def build_report(study: optuna.Study) -> StudyReport:
    """Read a study (any storage, either backend) into a :class:`StudyReport`; never writes."""
    spec = study.user_attrs.get(SPEC_ATTR)
    spec = spec if isinstance(spec, dict) else None
    direction = "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
    merged = trial_attrs(study)
    frozen = study.get_trials(deepcopy=False)
    table = stored_table(study)
    scored = {t.user_attrs.get("scored_on") for t in frozen} - {None}
    metric = _value_name(str((spec or {}).get("study", {}).get("metric", "value")), table, scored)
    step_budget = study.user_attrs.get(STEP_BUDGET_ATTR)
    views = [_view(t, merged[t.number]) for t in frozen]
    counts = Counter(v.outcome for v in views)
    reasons = Counter(
        str(v.attrs.get("instability", "unstable"))
        for v in views
        if v.outcome == "pruned by the rules"
    )
    # Finished trials (completed, or stopped by a base pruner) that store.teach classified.
    taught = Counter(
        str(v.attrs.get("instability", "unstable"))
        for v in views
        if v.outcome in ("complete", "pruned by the base pruner") and v.attrs.get("unstable")
    )
    steps = [_int(v.attrs.get("steps")) for v in views]
    unstable = [v.outcome == "pruned by the rules" or bool(v.attrs.get("unstable")) for v in views]
    best = _best(views, direction)
    evaluation = table is not None or bool(scored)
    importances, importance_note = (
        (None, "parameter importances: none for evaluation runs (tuned configurations re-run)")
        if evaluation
        else _importances(study, views)
    )
    return StudyReport(
        study_name=study.study_name,
        metric=metric,
        direction=direction,
        spec=spec,
        trials=views,
        counts={name: counts.get(name, 0) for name in OUTCOMES},
        states=dict(Counter(t.state.name for t in frozen)),
        reasons=dict(reasons),
        taught=dict(taught),
        backends=dict(Counter(str(v.attrs.get("backend", "optuna")) for v in views)),
        epochs=sum(len(v.attrs.get("history") or []) for v in views),
        steps=sum(steps),
        unstable_steps=sum(s for s, u in zip(steps, unstable, strict=True) if u),
        best=best,
        schedulers=_scheduler_rows(views, direction, best),
        boundary=[
            line
            for context, pair in sorted(stability_boundary(study, merged).items(), key=str)
            if (line := describe_boundary(context, *pair)) is not None
        ],
        importances=importances,
        importance_note=importance_note,
        range_test=stored_range_test(study),
        comparison=table,
        evaluation=evaluation,
        step_budget=step_budget if isinstance(step_budget, int) else None,
    )


def _value_name(metric: str, table: ComparisonTable | None, scored: set[Any]) -> str:
    """What the trials' values are: the study's metric, or for a comparison's evaluation runs
    (which record ``scored_on``) the test metric when they were scored on a test split."""
    if table is not None:
        return table.score
    if scored == {"test"}:
        return TEST_METRICS.get(metric, f"test score ({metric} on the test split)")
    if "test" in scored:  # should not happen: a task either has a test split or not
        return f"{metric} or its test-split counterpart"
    return metric


def _view(trial: FrozenTrial, attrs: dict[str, Any]) -> TrialView:
    return TrialView(
        number=trial.number,
        outcome=outcome(trial, attrs),
        value=None if trial.value is None else float(trial.value),
        scheduler=str(attrs.get("scheduler", trial.params.get("scheduler", "plrs"))),
        lr_min=_float(attrs.get("lr_min")),
        lr_max=_float(attrs.get("lr_max")),
        lr=_float(attrs.get("lr")),
        attrs=attrs,
        intermediate=dict(trial.intermediate_values),
    )


def _best(views: list[TrialView], direction: str) -> TrialView | None:
    complete = [v for v in views if v.outcome == "complete" and _finite(v.value)]
    if not complete:
        return None
    pick = max if direction == "maximize" else min
    return pick(complete, key=_value)


def _scheduler_rows(
    views: list[TrialView], direction: str, best: TrialView | None
) -> list[SchedulerRow]:
    rows = []
    for name in sorted({v.scheduler for v in views}):
        own = [v for v in views if v.scheduler == name]
        values = [v.value for v in own if v.outcome == "complete" and v.value is not None]
        values = [v for v in values if math.isfinite(v)]
        own_best = _best(own, direction)
        rows.append(
            SchedulerRow(
                scheduler=name,
                trials=len(own),
                best=None if own_best is None else own_best.value,
                mean=statistics.fmean(values) if values else None,
                sd=statistics.stdev(values) if len(values) > 1 else None,
                to_within_1pct=_trials_to_reach(own, direction, best),
                best_trial=own_best,
            )
        )
    return rows


def _trials_to_reach(own: list[TrialView], direction: str, best: TrialView | None) -> int | None:
    """How many of ``own`` trials (in order) it took to get within 1% of the study's best."""
    if best is None or best.value is None:
        return None
    tolerance = 0.01 * abs(best.value)
    for count, view in enumerate(own, start=1):
        if view.outcome != "complete" or view.value is None or not _finite(view.value):
            continue
        gap = best.value - view.value if direction == "maximize" else view.value - best.value
        if gap <= tolerance:
            return count
    return None


def _importances(
    study: optuna.Study, views: list[TrialView]
) -> tuple[dict[str, float] | None, str]:
    complete = sum(v.outcome == "complete" for v in views)
    if complete < _MIN_TRIALS_FOR_IMPORTANCE:
        return None, (
            f"parameter importances need at least {_MIN_TRIALS_FOR_IMPORTANCE} complete trials "
            f"(this study has {complete})"
        )
    try:
        found = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. a single searched parameter
        return None, f"parameter importances: not available ({exc})"
    return {k: float(v) for k, v in found.items()}, "Optuna's fANOVA evaluator"


def _value(view: TrialView) -> float:
    return math.nan if view.value is None else view.value


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float | None) -> str:
    return "LR" if value is None else f"{value:.4g}"
