"""``StudySearcher``: a Ray Tune searcher that asks an Optuna study and tells it the truth."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState
from ray.tune.search import Searcher

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, choice, integer, text
from prl_tune.hosts.ray._scheduler import UNSTABLE_KEY, InstabilityScheduler
from prl_tune.space import PLRSSpace, SchedulerSpace
from prl_tune.stability import StopRecord
from prl_tune.store import mark_unstable, study_records

_MODES = {"max": StudyDirection.MAXIMIZE, "min": StudyDirection.MINIMIZE}


class StudySearcher(Searcher):
    """Proposes every Ray Tune trial through an Optuna study and records it there truthfully.

    A drop-in for ``search_alg=OptunaSearch(...)``: the study's sampler proposes each trial's
    parameters (``space.suggest``, so ``lr_min``/``lr_max`` are stored on the trial), every
    result's metric is stored as an intermediate value (the last one too, which Ray does not
    pass to a searcher when a scheduler stops the trial), and the trial ends in the state that
    says what happened:

    - **COMPLETE** with the last metric: it ran all ``max_iterations`` (or, without
      ``max_iterations``, it ended on its own).
    - **PRUNED**: a scheduler stopped it early (``pruned_by = "base"``, or ``"rules"``/``"memory"``
      with the reason when ``scheduler`` is the ``InstabilityScheduler`` that stopped it); a
      result with ``unstable`` true (prl_tune's loop judged it) is recorded as unstable.
    - **FAIL**: its code raised, or its metric is NaN (``error`` says which).

    With ``scheduler``, the scheduler's memory starts from the ranges the study already knows
    to be unstable, so ranges learned earlier, on either host, block trials here too. Only the
    process that runs the ``Tuner`` writes to the study; trials never open the database.

    Example:
        >>> study = optuna.create_study(storage="sqlite:///ray.db", direction="maximize")
        >>> space = PLRSSpace(lr_max=(1e-3, 10.0))
        >>> scheduler = InstabilityScheduler(space=space)
        >>> searcher = StudySearcher(
        ...     study, space, metric="val_accuracy", max_iterations=8, scheduler=scheduler
        ... )
        >>> config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
        ...                          metric="val_accuracy", mode="max")  # doctest: +SKIP

    Args:
        study: the Optuna study (any storage) that proposes and records the trials.
        space: the ``PLRSSpace`` or ``SchedulerSpace`` of the trials' configs.
        metric: the result key to optimize. ``None`` takes the ``TuneConfig``'s, which Ray only
            passes to a searcher when the ``Tuner`` has a ``param_space``; the searcher proposes
            the parameters itself, so give ``metric`` here.
        mode: ``"max"`` or ``"min"``, which must agree with the study's direction (default: the
            study's).
        max_iterations: the number of results a trial that runs to its end reports (its
            epochs); a trial stopped with fewer is PRUNED. ``None``: a trial that ends without
            an error is COMPLETE unless a scheduler in ``scheduler`` or its result says
            otherwise.
        scheduler: the ``InstabilityScheduler`` of the same ``Tuner``, whose reasons are
            recorded and whose memory is seeded from the study.
        iteration_key: the result key that counts a trial's results (default
            ``"training_iteration"``, which Ray adds).
        value_key: the result key whose last value is a COMPLETE trial's value (default: the
            metric), e.g. a best-so-far value the trainable reports.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: PLRSSpace | SchedulerSpace,
        *,
        metric: str | None = None,
        mode: str | None = None,
        max_iterations: int | None = None,
        scheduler: InstabilityScheduler | None = None,
        iteration_key: str = "training_iteration",
        value_key: str | None = None,
    ) -> None:
        if not isinstance(study, optuna.Study):
            raise ArgumentTypeError("study", f"must be an optuna.Study but got {study!r}.")
        if not isinstance(space, PLRSSpace | SchedulerSpace):
            raise ArgumentTypeError(
                "space", f"must be a PLRSSpace or SchedulerSpace but got {space!r}."
            )
        if scheduler is not None and not isinstance(scheduler, InstabilityScheduler):
            raise ArgumentTypeError(
                "scheduler", f"must be an InstabilityScheduler or None but got {scheduler!r}."
            )
        self._check_mode(study, mode)
        super().__init__()
        self._objective = metric
        self._goal = mode or ("max" if study.direction == StudyDirection.MAXIMIZE else "min")
        self.study = study
        self.space = space
        self.max_iterations = integer("max_iterations", max_iterations, minimum=1, optional=True)
        self.scheduler = scheduler
        self.iteration_key = text("iteration_key", iteration_key)
        self.value_key = None if value_key is None else text("value_key", value_key)
        self._trials: dict[str, optuna.Trial] = {}
        self._reported: dict[str, set[int]] = {}
        if scheduler is not None:
            scheduler.memory.records.extend(r for r in study_records(study) if r.unstable)

    @classmethod
    def from_storage(
        cls,
        storage: str | optuna.storages.BaseStorage,
        study_name: str,
        space: PLRSSpace | SchedulerSpace,
        *,
        direction: str = "maximize",
        sampler: optuna.samplers.BaseSampler | None = None,
        **kwargs: Any,
    ) -> StudySearcher:
        """A searcher on the study ``study_name`` in ``storage``, created if it does not exist.

        ``storage`` is a storage URL (opened with prl_tune's settings: SQLite in WAL mode with
        a long busy timeout, heartbeats) or an Optuna ``BaseStorage``; the other keywords are
        the constructor's.
        """
        from prl_tune.store import open_storage

        if isinstance(storage, str):
            storage = open_storage(storage)
        elif not isinstance(storage, optuna.storages.BaseStorage):
            raise ArgumentTypeError(
                "storage", f"must be a storage URL or an optuna BaseStorage but got {storage!r}."
            )
        study = optuna.create_study(
            storage=storage,
            study_name=text("study_name", study_name),
            direction=choice("direction", direction, ("maximize", "minimize")),
            sampler=sampler,
            load_if_exists=True,
        )
        return cls(study, space, **kwargs)

    @staticmethod
    def _check_mode(study: optuna.Study, mode: str | None) -> None:
        if mode is None:
            return
        if mode not in _MODES:
            raise ArgumentValueError("mode", f"must be one of ['max', 'min'] but got {mode!r}.")
        if _MODES[mode] != study.direction:
            raise ArgumentValueError(
                "mode",
                f"must agree with the study's direction ({study.direction.name.lower()}) but got "
                f"{mode!r}.",
            )

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        if self._objective is None and metric is not None:
            self._objective = metric
        self._check_mode(self.study, mode)  # TuneConfig's mode must agree with the study
        return True

    @property
    def metric(self) -> str | None:  # type: ignore[override]
        """The result key optimized (the ``TuneConfig``'s unless given)."""
        return self._objective

    @property
    def mode(self) -> str | None:  # type: ignore[override]
        """``"max"`` or ``"min"``, as the study's direction."""
        return self._goal

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._objective is None:
            raise ArgumentValueError(
                "metric",
                "must be given to StudySearcher when the Tuner has no param_space (Ray passes "
                "TuneConfig's metric to a searcher only with one) but is None.",
            )
        trial = self.study.ask()
        self.space.suggest(trial)
        trial.set_user_attr("ray_trial_id", trial_id)
        self._trials[trial_id] = trial
        self._reported[trial_id] = set()
        return dict(trial.params)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._trials.get(trial_id)
        if trial is not None:
            self._report(trial_id, trial, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._trials.pop(trial_id, None)
        if trial is None:
            return
        if result:
            self._report(trial_id, trial, result)  # Ray skips on_trial_result when it stops one
        self._reported.pop(trial_id, None)
        state, value = self._outcome(trial_id, trial, result or {}, error)
        self.study.tell(trial, value, state=state)

    def _report(self, trial_id: str, trial: optuna.Trial, result: Mapping[str, Any]) -> None:
        value = _number(result.get(self.metric)) if self.metric else None
        step = result.get(self.iteration_key)
        if value is None or not isinstance(step, int):
            return
        if step not in self._reported[trial_id] and math.isfinite(value):
            trial.report(value, step)
            self._reported[trial_id].add(step)

    def _outcome(
        self, trial_id: str, trial: optuna.Trial, result: Mapping[str, Any], error: bool
    ) -> tuple[TrialState, float | None]:
        if error:
            known = self.scheduler.errors.get(trial_id) if self.scheduler is not None else None
            trial.set_user_attr(
                "error", known or "the trial raised; its error file is in Ray's trial folder"
            )
            return TrialState.FAIL, None
        stop = self.scheduler.stopped.get(trial_id) if self.scheduler is not None else None
        if stop is None and result.get(UNSTABLE_KEY):
            stop = StopRecord(
                str(result.get("pruned_by", "rules")),
                str(result.get("prune_reason", "the trainable reported unstable")),
                None if result.get("instability") is None else str(result["instability"]),
                result.get("diverged_at_step")
                if isinstance(result.get("diverged_at_step"), int)
                else None,
            )
        if stop is not None:
            mark_unstable(trial, stop)
            return TrialState.PRUNED, None
        value = _number(result.get(self.metric)) if self.metric else None
        iteration = result.get(self.iteration_key)
        if value is None:
            trial.set_user_attr("pruned_by", "base")
            trial.set_user_attr("prune_reason", "stopped before it reported the metric")
            return TrialState.PRUNED, None
        if self.max_iterations is not None and (
            not isinstance(iteration, int) or iteration < self.max_iterations
        ):
            trial.set_user_attr("pruned_by", "base")
            trial.set_user_attr(
                "prune_reason", f"stopped by the scheduler after {iteration} results"
            )
            return TrialState.PRUNED, None
        if self.value_key is not None:
            value = _number(result.get(self.value_key))
            if value is None:
                trial.set_user_attr("error", f"the last result has no number {self.value_key!r}")
                return TrialState.FAIL, None
        if not math.isfinite(value):
            trial.set_user_attr("error", f"objective value is {value}")
            return TrialState.FAIL, None
        return TrialState.COMPLETE, value


def _number(value: object) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else ``None``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None
