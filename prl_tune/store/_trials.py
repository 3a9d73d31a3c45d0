"""How a trial's stop is recorded in the store, and what the memory reads back from it.

Both hosts and the report use these, so the meaning of ``unstable``, ``pruned_by`` and the
trial's LR range is defined once, on Optuna's public API.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from prl_tune.stability import (
    RangeRecord,
    RunOutcome,
    StabilityRules,
    StopRecord,
    UnstableRangeMemory,
    classify_run,
    lr_bounds,
    range_context,
)

#: The constraint a diverged or memory-pruned trial gets (> 0 is infeasible), so Optuna's
#: samplers rank it below every feasible trial instead of ignoring it like a FAIL.
CONSTRAINT_KEY = "unstable"
#: Study user attributes ``prl_tune.verdict.<trial number>``: the stops an ``InstabilityPruner``
#: decided. A pruner is handed a ``FrozenTrial``, which Optuna's public API cannot write to; the
#: study's user attributes are the narrowest public place that every worker shares.
VERDICT_PREFIX = "prl_tune.verdict."


def json_float(value: float) -> float | str:
    """JSON has no NaN/inf; Optuna's RDB storage stores user attributes as JSON text."""
    return float(value) if math.isfinite(value) else repr(float(value))


def stop_attrs(stop: StopRecord) -> dict[str, Any]:
    """The user attributes that record ``stop``: ``unstable``, ``pruned_by``, ``prune_reason``,
    and ``instability`` and ``diverged_at_step`` when the stop has them."""
    attrs: dict[str, Any] = {
        "unstable": True,
        "pruned_by": stop.pruned_by,
        "prune_reason": stop.reason,
    }
    if stop.kind is not None:
        attrs["instability"] = stop.kind
    if stop.step is not None:
        attrs["diverged_at_step"] = stop.step
    return attrs


def mark_unstable(trial: optuna.Trial, stop: StopRecord) -> None:
    """Record on a running trial that it was stopped as unstable, and make it infeasible."""
    for key, value in stop_attrs(stop).items():
        trial.set_user_attr(key, value)
    if CONSTRAINT_KEY not in trial.constraints:
        trial.set_constraint(CONSTRAINT_KEY, 1.0)


def record_verdict(study: optuna.Study, number: int, stop: StopRecord) -> None:
    """Record on the study that its trial ``number`` was stopped as unstable (see
    :data:`VERDICT_PREFIX`); :func:`trial_attrs` merges it into the trial's attributes."""
    study.set_user_attr(f"{VERDICT_PREFIX}{number}", stop_attrs(stop))


def trial_attrs(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Every trial's user attributes with the study's verdict on it merged in, by number."""
    user = study.user_attrs
    verdicts = {
        int(key[len(VERDICT_PREFIX) :]): value
        for key, value in user.items()
        if key.startswith(VERDICT_PREFIX)
    }
    return {
        trial.number: {**trial.user_attrs, **verdicts.get(trial.number, {})}
        for trial in study.get_trials(deepcopy=False)
    }


def range_record(
    trial: FrozenTrial | optuna.Trial, attrs: Mapping[str, Any] | None = None
) -> RangeRecord | None:
    """A trial's range as a memory record (``lr_min``/``lr_max``, or a peak ``lr``), read from
    its user attributes (or ``attrs``), its context from its other searched parameters."""
    attrs = trial.user_attrs if attrs is None else attrs
    bounds = lr_bounds(attrs)
    if bounds is None:
        return None
    context = range_context(str(attrs.get("scheduler", "plrs")), trial.params)
    learned = _number(attrs.get("learned_at"))
    return RangeRecord(
        *bounds,
        bool(attrs.get("unstable", False)),
        context,
        trial.number,
        learned_at=None if learned is None or not math.isfinite(learned) else int(learned),
        flat=attrs.get("outcome") == "flat",
    )


def teach(
    trial: optuna.Trial,
    history: list[dict[str, Any]],
    progress: Mapping[str, Any],
    rules: StabilityRules,
    records: list[RangeRecord],
) -> RunOutcome:
    """Classify a run the rules let finish (completed, or stopped by a base pruner) from its
    history and record what it teaches on the running trial: ``outcome`` (``"unstable"``,
    ``"flat"`` or ``"stable"``, see :func:`~prl_tune.stability.classify_run`); an unstable
    run also gets ``unstable``, ``instability``, ``unstable_reason`` and the infeasible
    constraint, like a run the rules stopped. A flat run is dead (unstable) when a less
    aggressive range among ``records`` (the study's other trials) learned, else too slow.
    """
    outcome = classify_run(
        history,
        initial_loss=_number(progress.get("initial_loss")),
        peak_loss=_number(progress.get("peak_loss")),
        chance_loss=_number(progress.get("chance_loss")),
        rules=rules,
        learned_at=progress.get("learned_at"),
    )
    if outcome.outcome == "flat":
        own = range_record(trial, {**trial.user_attrs, "outcome": "flat"})
        if own is not None and UnstableRangeMemory("dominance", [*records, own]).is_unstable(own):
            outcome = RunOutcome(
                "unstable",
                "dead",
                f"dead{(outcome.reason or '')[len('flat') :]}; a gentler range learned",
            )
    trial.set_user_attr("outcome", outcome.outcome)
    if outcome.outcome == "unstable":
        trial.set_user_attr("unstable", True)
        trial.set_user_attr("instability", outcome.kind)
        trial.set_user_attr("unstable_reason", outcome.reason)
        if CONSTRAINT_KEY not in trial.constraints:
            trial.set_constraint(CONSTRAINT_KEY, 1.0)
    return outcome


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def study_records(
    study: optuna.Study,
    *,
    exclude: int | None = None,
    attrs: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[RangeRecord]:
    """What the study has observed: finished trials that ran (memory-pruned ones did not).

    ``attrs``: :func:`trial_attrs` of the study when the caller has them already.
    """
    attrs = trial_attrs(study) if attrs is None else attrs
    records = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        own = attrs[trial.number]
        if trial.number == exclude or own.get("pruned_by") == "memory":
            continue
        record = range_record(trial, own)
        if record is not None:
            records.append(record)
    return records


def stability_boundary(
    study: optuna.Study, attrs: Mapping[int, Mapping[str, Any]] | None = None
) -> dict[Hashable, tuple[float | None, float | None]]:
    """Per context: the largest stable ``lr_max`` and the smallest unstable one observed."""
    records = study_records(study, attrs=attrs)
    memory = UnstableRangeMemory("dominance", records)
    return {context: memory.boundary(context) for context in {r.context for r in records}}
