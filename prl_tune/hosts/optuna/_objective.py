"""One Optuna trial of a study: sample the space, train with the shared loop, report to Optuna."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

from prl_tune.config import LossRange, objective_value, train_trial
from prl_tune.hosts.optuna._pruner import InstabilityPruner
from prl_tune.space import SchedulerSpace
from prl_tune.stability import RangeRecord, StopRecord, UnstableRangeMemory
from prl_tune.store import json_float, mark_unstable, range_record, study_records, teach

if TYPE_CHECKING:
    from prl_tune.config import StudySpec
    from prl_tune.training import EpochMetrics, TrainResult


class _Reporter:
    """``on_epoch``: report the metric, keep the history, and stop when Optuna's pruner says so."""

    def __init__(
        self,
        spec: StudySpec,
        trial: optuna.Trial,
        progress: LossRange,
        records: list[RangeRecord],
    ) -> None:
        self.spec = spec
        self.metric = spec.metric
        self.trial = trial
        self.progress = progress
        self.records = records
        self.history: list[dict[str, Any]] = []

    def __call__(self, metrics: EpochMetrics) -> None:
        trial = self.trial
        trial.report(float(getattr(metrics, self.metric)), metrics.epoch)
        self.history.append({k: json_float(v) for k, v in metrics.as_dict().items()})
        trial.set_user_attr("history", self.history)
        if not trial.should_prune():
            return
        trial.set_user_attr("steps", metrics.step)
        pruner = trial.study.pruner
        stop = None
        if isinstance(pruner, InstabilityPruner):
            stop = pruner.decision(trial.study, trial.number)
        if stop is not None:
            mark_unstable(trial, stop)
        else:
            trial.set_user_attr("pruned_by", "base")
            trial.set_user_attr("prune_reason", f"base pruner at epoch {metrics.epoch}")
            # What the base pruner stopped may still be a lesson: classified from its history.
            teach(trial, self.history, self.progress.attrs(), self.spec.rules, self.records)
        raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch}")


def optuna_objective(spec: StudySpec, trial: optuna.Trial) -> float:
    """Run one Optuna trial: suggest, train, ``trial.report`` every epoch, prune on request.

    A range that the study's memory already knows to be unstable is pruned before training.
    A run stopped by the divergence rules (non-finite, exploded, sustained, collapsed or dead
    training loss) is pruned at once and marked unstable (``prune_reason``, ``instability``,
    ``diverged_at_step``, an infeasible constraint) so the sampler avoids the region. The
    ``"dead"`` rule gets its evidence from the study: a less aggressive range that learned.
    A run that completes, or that a base pruner stops, is classified from its history
    (:func:`prl_tune.store.teach`): an unstable one is marked so too.

    Args:
        spec: the study, with a concrete space (``prl_tune.store.resolve_lr_max``).
        trial: the Optuna trial.
    """
    if not isinstance(spec.space, SchedulerSpace):
        raise TypeError("spec.space must be resolved (resolve_lr_max) before trials run.")
    config = spec.space.suggest(trial)
    trial.set_user_attr("seed", spec.seed)
    trial.set_user_attr("backend", "optuna")
    pruner = trial.study.pruner
    records = study_records(trial.study, exclude=trial.number)  # read once per trial
    blocker = (
        pruner.memory_blocker(trial.study, trial, records)
        if isinstance(pruner, InstabilityPruner)
        else None
    )
    if blocker is not None:
        stop = StopRecord.by_memory(blocker)
        mark_unstable(trial, stop)
        trial.set_user_attr("steps", 0)
        raise optuna.TrialPruned(stop.reason)
    own = range_record(trial)
    known = own is not None and UnstableRangeMemory("dominance", records).known_to_learn(
        own.lr_min, own.lr_max, own.context, within=spec.rules.dead_window
    )
    progress = LossRange()
    reporter = _Reporter(spec, trial, progress, records)
    try:
        result = train_trial(
            spec, config, on_epoch=reporter, progress=progress, known_to_learn=known
        )
    finally:  # also when a pruner stops the trial from on_epoch
        for key, value in progress.attrs().items():
            trial.set_user_attr(key, value if isinstance(value, int) else json_float(value))
    trial.set_user_attr("steps", result.steps)
    if result.diverged:
        _record_divergence(trial, result)
        raise optuna.TrialPruned(result.reason or "diverged")
    teach(trial, reporter.history, progress.attrs(), spec.rules, records)
    return objective_value(spec, result)


def _record_divergence(trial: optuna.Trial, result: TrainResult) -> None:
    stop = StopRecord(
        "rules",
        result.reason or "diverged",
        result.instability or "non-finite",
        result.diverged_at_step,
    )
    mark_unstable(trial, stop)
    trial.set_user_attr("loss_tail", [json_float(v) for v in result.loss_tail])
    trial.set_user_attr("lr_tail", [float(v) for v in result.lr_tail])
