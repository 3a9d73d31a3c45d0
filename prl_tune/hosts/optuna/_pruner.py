"""``InstabilityPruner``: the stability rules and the unstable-range memory as an Optuna pruner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from prl_tune._checks import ArgumentTypeError, choice, flag, real
from prl_tune.stability import (
    MEMORY_MODES,
    RangeRecord,
    StabilityMonitor,
    StabilityRules,
    StopRecord,
    UnstableRangeMemory,
    Verdict,
)
from prl_tune.store import range_record, record_verdict, study_records

if TYPE_CHECKING:
    from prl_tune.config import StudySpec


@dataclass(frozen=True)
class _Decided:
    study: str
    trial: int


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
       Each value is judged at its own report step, so the rules' windows
       (``collapse_window``, ``rise_window``) are in your report steps: with a report every 10
       steps, a window of 16 is over after two reports. The running losses average over
       reports (``smoothing`` is the weight of the newest report). The verdict's
       ``diverged_at_step`` and the step numbers in its reason are report steps, as passed
       to ``trial.report`` (step 0 included).
    3. **Base** — the wrapped pruner (``MedianPruner``, ``HyperbandPruner``, ...) decides.

    A trial pruned by 1 or 2 is recorded as unstable in the study (``prl_tune.store``'s
    ``trial_attrs`` reads it back with ``unstable``, ``pruned_by``, ``prune_reason``), so the
    memory learns from it and the report shows why; :meth:`decision` gives the stop to the
    objective, which can also mark the running trial itself (prl_tune's objective does, with an
    infeasible constraint that TPE learns from).

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
        memory_on_reports: also check the memory at every report (default ``True``), which
            stops a running trial once a concurrent one proves a range it dominates unstable;
            each check reads the study's trials. With a single worker no record can appear
            while a trial runs, so prl_tune's runner checks the memory only before training
            and passes ``False``.
        chance_loss: the chance-level loss of the reported values (``ln C`` for
            cross-entropy over ``C`` balanced classes), which the collapse rule needs;
            ``None`` (default) turns that rule off.
        stateful_optimizer: whether the trials' optimizer keeps momentum (SGD with momentum,
            AdamW): then an explosion must hold for ``rules.explode_window_stateful`` losses,
            which momentum methods need to come back from a spike (default False).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown memory mode, or a ``chance_loss`` that is not a finite
            number ``> 0``.
    """

    def __init__(
        self,
        base: BasePruner | None = None,
        *,
        rules: StabilityRules | None = None,
        memory: str = "dominance",
        rules_on_reports: bool | None = None,
        memory_on_reports: bool = True,
        chance_loss: float | None = None,
        stateful_optimizer: bool = False,
    ) -> None:
        if base is not None and not isinstance(base, BasePruner):
            raise ArgumentTypeError("base", f"must be an optuna pruner or None but got {base!r}.")
        if rules is not None and not isinstance(rules, StabilityRules):
            raise ArgumentTypeError("rules", f"must be a StabilityRules or None but got {rules!r}.")
        if rules_on_reports is not None and not isinstance(rules_on_reports, bool):
            raise ArgumentTypeError(
                "rules_on_reports", f"must be a bool or None but got {rules_on_reports!r}."
            )
        self.base = base
        self.rules = rules if rules is not None else StabilityRules()
        self.memory = choice("memory", memory, MEMORY_MODES)
        self.rules_on_reports = rules_on_reports
        self.memory_on_reports = flag("memory_on_reports", memory_on_reports)
        self.chance_loss: float | None = real(
            "chance_loss", chance_loss, low=0.0, low_open=True, optional=True
        )
        self.stateful_optimizer = flag("stateful_optimizer", stateful_optimizer)
        self._decisions: dict[_Decided, StopRecord] = {}

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        stop = self._unstable(study, trial)
        if stop is not None:
            self._decisions[_Decided(study.study_name, trial.number)] = stop
            record_verdict(study, trial.number, stop)
            return True
        return self.base.prune(study, trial) if self.base is not None else False

    def decision(self, study: optuna.Study, number: int) -> StopRecord | None:
        """The stop this pruner decided for trial ``number`` in this process, if it did."""
        return self._decisions.get(_Decided(study.study_name, number))

    def memory_blocker(
        self,
        study: optuna.Study,
        trial: FrozenTrial | optuna.Trial,
        records: list[RangeRecord] | None = None,
    ) -> RangeRecord | None:
        """The unstable trial whose range makes ``trial``'s range too aggressive, if any.

        prl_tune's objective calls this before training, so a blocked range costs no step.
        ``records``: the study's other trials (``store.study_records``) when the caller has
        read them already.
        """
        if self.memory == "off":
            return None
        own = range_record(trial)
        if own is None:
            return None
        if records is None:
            records = study_records(study, exclude=trial.number)
        memory = UnstableRangeMemory(self.memory, records)
        return memory.blocker(own.lr_min, own.lr_max, own.context)

    def _unstable(self, study: optuna.Study, trial: FrozenTrial) -> StopRecord | None:
        blocker = self.memory_blocker(study, trial) if self.memory_on_reports else None
        if blocker is not None:
            return StopRecord.by_memory(blocker)
        apply = self.rules_on_reports
        if apply is None:
            apply = study.direction == StudyDirection.MINIMIZE
        if not (apply and trial.intermediate_values):
            return None
        verdict = self._rules_verdict(trial)
        return None if verdict is None else StopRecord.by_rules(verdict)

    def _rules_verdict(self, trial: FrozenTrial) -> Verdict | None:
        """The rules' verdict on the trial's reports, each judged at its report step (fed
        afresh at every call: a trial reports a handful of values, once per epoch or so)."""
        monitor = StabilityMonitor(
            self.rules,
            chance_loss=self.chance_loss,
            stateful_optimizer=self.stateful_optimizer,
        )
        for step, value in sorted(trial.intermediate_values.items()):
            if monitor.observe([value], first_step=step) is not None:
                break
        return monitor.verdict


def make_pruner(spec: StudySpec) -> InstabilityPruner:
    """The ``[pruning]`` section: the instability pruner around the base pruner.

    The divergence rules run inside the training loop on the per-step training loss (cheaper
    and earlier than on per-epoch reports), so the pruner applies only the memory and the base.
    """
    settings = spec.pruning
    base: optuna.pruners.BasePruner | None = None
    if settings.base == "median":
        base = optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials, n_warmup_steps=settings.n_warmup_steps
        )
    elif settings.base == "asha":  # Optuna's successive halving is asynchronous (ASHA)
        base = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_resource, reduction_factor=settings.reduction_factor
        )
    elif settings.base == "hyperband":
        base = optuna.pruners.HyperbandPruner(
            min_resource=settings.min_resource,
            max_resource=spec.task.epochs,
            reduction_factor=settings.reduction_factor,
        )
    return InstabilityPruner(
        base,
        rules=spec.rules,
        memory=settings.memory,
        rules_on_reports=False,
        memory_on_reports=spec.workers > 1,
    )
