"""``InstabilityPruner``: the stability rules and the unstable-range memory as an Optuna pruner."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from prl_tune.stability import (
    MEMORY_MODES,
    RangeRecord,
    StabilityMonitor,
    StabilityRules,
    UnstableRangeMemory,
    lr_bounds,
)

if TYPE_CHECKING:
    from prl_tune.stability import Verdict

#: The constraint a diverged or memory-pruned trial gets (> 0 is infeasible), so Optuna's
#: samplers rank it below every feasible trial instead of ignoring it like a FAIL.
CONSTRAINT_KEY = "unstable"
_LR_PARAM_SUFFIXES = ("lr_max", "lr_min_ratio", "lr_min_frac", "lr")


class InstabilityPruner(BasePruner):
    """Prunes trials whose LR range is unstable; otherwise defers to a wrapped pruner.

    Three checks, in order, every time a trial calls ``trial.should_prune()``:

    1. **Memory** — the trial's ``lr_min``/``lr_max`` (user attributes, as ``PLRSSpace``
       stores them) are at least as aggressive as a range that already proved unstable in this
       study, with the other searched parameters equal: pruned as ``pruned_by = "memory"``.
       The memory is the study itself, so every worker process and machine sharing the storage
       shares it.
    2. **Rules on the reports** — when the study minimizes (a loss, reported with
       ``trial.report``), the divergence rules run on the reported values: a user's own
       objective gets divergence pruning by passing this pruner, with no other change.
    3. **Base** — the wrapped pruner (``MedianPruner``, ``HyperbandPruner``, ...) decides.

    A trial pruned by 1 or 2 is marked ``unstable`` (user attributes ``unstable``,
    ``prune_reason``, ``diverged_at_step``) and gets an infeasible constraint, so TPE and the
    other constraint-aware samplers learn to avoid the region.

    Example:
        >>> import optuna
        >>> from prl_tune import InstabilityPruner
        >>> study = optuna.create_study(pruner=InstabilityPruner(optuna.pruners.MedianPruner()))

    Args:
        base: the pruner to defer to; ``None`` never prunes otherwise.
        rules: the divergence rules for reported values (default ``StabilityRules()``).
        memory: ``"dominance"`` (default), ``"lr_max"`` or ``"off"``; see
            :class:`~prl_tune.stability.UnstableRangeMemory`.
        rules_on_reports: apply the rules to reported values; default ``None`` means "when the
            study minimizes". prl_tune's own training loop applies the rules to the per-step
            training loss itself and passes ``False``.
    """

    def __init__(
        self,
        base: BasePruner | None = None,
        *,
        rules: StabilityRules | None = None,
        memory: str = "dominance",
        rules_on_reports: bool | None = None,
    ) -> None:
        if base is not None and not isinstance(base, BasePruner):
            raise TypeError(f"base must be an optuna pruner or None but got {base!r}.")
        if rules is not None and not isinstance(rules, StabilityRules):
            raise TypeError(f"rules must be a StabilityRules or None but got {rules!r}.")
        if memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {list(MEMORY_MODES)} but got {memory!r}.")
        if rules_on_reports is not None and not isinstance(rules_on_reports, bool):
            raise TypeError(
                f"rules_on_reports must be a bool or None but got {rules_on_reports!r}."
            )
        self.base = base
        self.rules = rules if rules is not None else StabilityRules()
        self.memory = memory
        self.rules_on_reports = rules_on_reports

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self.prune_by_memory(study, trial):
            return True
        apply = self.rules_on_reports
        if apply is None:
            apply = study.direction == StudyDirection.MINIMIZE
        if apply and trial.intermediate_values:
            verdict = _replay(self.rules, trial)
            if verdict is not None:
                mark_unstable(
                    study,
                    trial,
                    reason=verdict.reason,
                    pruned_by="rules",
                    kind=verdict.kind,
                    step=verdict.step,
                )
                return True
        return self.base.prune(study, trial) if self.base is not None else False

    def prune_by_memory(self, study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> bool:
        """Mark ``trial`` unstable and return ``True`` if the memory blocks its range.

        prl_tune's objective calls this before training, so a blocked range costs no step.
        """
        blocker = self.memory_blocker(study, trial)
        if blocker is None:
            return False
        mark_unstable(
            study,
            trial,
            reason=f"memory: range at least as aggressive as unstable trial {blocker.trial} "
            f"(lr_min={blocker.lr_min:.4g}, lr_max={blocker.lr_max:.4g})",
            pruned_by="memory",
        )
        return True

    def memory_blocker(
        self, study: optuna.Study, trial: FrozenTrial | optuna.Trial
    ) -> RangeRecord | None:
        """The unstable trial whose range makes ``trial``'s range too aggressive, if any."""
        if self.memory == "off":
            return None
        own = range_record(trial, unstable=False)
        if own is None:
            return None
        memory = UnstableRangeMemory(self.memory, study_records(study, exclude=trial.number))
        return memory.blocker(own.lr_min, own.lr_max, own.context)


def _replay(rules: StabilityRules, trial: FrozenTrial) -> Verdict | None:
    values = [value for _, value in sorted(trial.intermediate_values.items())]
    return StabilityMonitor(rules).observe(values, first_step=1)


def mark_unstable(
    study: optuna.Study,
    trial: FrozenTrial | optuna.Trial,
    *,
    reason: str,
    pruned_by: str,
    kind: str | None = None,
    step: int | None = None,
) -> None:
    """Record on a trial that it was stopped as unstable, and make it infeasible."""
    live = trial if isinstance(trial, optuna.Trial) else optuna.Trial(study, trial._trial_id)
    live.set_user_attr("unstable", True)
    live.set_user_attr("pruned_by", pruned_by)
    live.set_user_attr("prune_reason", reason)
    if kind is not None:
        live.set_user_attr("instability", kind)
    if step is not None:
        live.set_user_attr("diverged_at_step", step)
    if CONSTRAINT_KEY not in live.constraints:
        live.set_constraint(CONSTRAINT_KEY, 1.0)


def _context(trial: FrozenTrial | optuna.Trial) -> Hashable:
    """The searched parameters other than the LRs (equal context: comparable ranges)."""
    items: list[tuple[str, Any]] = [("scheduler", trial.user_attrs.get("scheduler", "plrs"))]
    for name, value in sorted(trial.params.items()):
        if name == "scheduler" or name.endswith(_LR_PARAM_SUFFIXES):
            continue
        items.append((name, value))
    return tuple(items)


def range_record(trial: FrozenTrial | optuna.Trial, *, unstable: bool) -> RangeRecord | None:
    """A trial's range as a memory record (``lr_min``/``lr_max``, or a peak ``lr``)."""
    bounds = lr_bounds(trial.user_attrs)
    if bounds is None:
        return None
    return RangeRecord(*bounds, unstable, _context(trial), trial.number)


def study_records(study: optuna.Study, *, exclude: int | None = None) -> list[RangeRecord]:
    """What the study has observed: finished trials that ran (memory-pruned ones did not)."""
    records = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if trial.number == exclude or trial.user_attrs.get("pruned_by") == "memory":
            continue
        record = range_record(trial, unstable=bool(trial.user_attrs.get("unstable", False)))
        if record is not None:
            records.append(record)
    return records


def stability_boundary(study: optuna.Study) -> dict[Hashable, tuple[float | None, float | None]]:
    """Per context: the largest stable ``lr_max`` and the smallest unstable one observed."""
    records = study_records(study)
    memory = UnstableRangeMemory("dominance", records)
    return {context: memory.boundary(context) for context in {r.context for r in records}}
