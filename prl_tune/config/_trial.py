"""What a study does with its spec, whichever host runs it: train one trial, run the range test."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prl_tune.config._spec import SpecError, StudySpec
from prl_tune.schedulers import SCHEDULERS

if TYPE_CHECKING:
    from prl_tune.lr_finder import RangeTestResult
    from prl_tune.training import EpochMetrics, TaskData, TrainResult


class LossRange:
    """What a trial's store keeps of its training loss, whatever stops it: the running loss at
    the first check (the first step's loss) and the highest, the step from which it was below
    its level (``learned_at``), and the task's chance level. :func:`train_trial` fills it."""

    def __init__(self) -> None:
        self.initial: float | None = None
        self.peak = -math.inf
        self.learned_at: int | None = None
        self.chance_loss: float | None = None

    def learned(self, step: int) -> None:
        """A ``train`` ``on_learned`` callback."""
        self.learned_at = step

    def observe(self, step: int, running_loss: float) -> None:
        if self.initial is None:
            self.initial = running_loss
        if running_loss > self.peak or not math.isfinite(running_loss):
            self.peak = running_loss

    def attrs(self) -> dict[str, float | int]:
        """``initial_loss`` and ``peak_loss`` (none before the first check), ``learned_at``
        (a step) and ``chance_loss`` when known."""
        attrs: dict[str, float | int] = {}
        if self.initial is not None:
            attrs.update(initial_loss=self.initial, peak_loss=self.peak)
        if self.learned_at is not None:
            attrs["learned_at"] = self.learned_at
        if self.chance_loss is not None:
            attrs["chance_loss"] = self.chance_loss
        return attrs


def load_study_task(spec: StudySpec) -> TaskData:
    """The spec's task, seeded with the study's seed, on the spec's device."""
    from prl_tune.training import load_task

    return load_task(spec.task.name, seed=spec.seed, device=spec.task.device, **spec.task.params)


def steps_per_trial(spec: StudySpec) -> int:
    """The most optimizer steps one trial of the study runs: ``[task] epochs`` x the batches of
    an epoch of its task (built once on the CPU, seeded with the study's seed, to count them;
    so a command that hands out GPUs to its workers does not start CUDA itself).

    Raises:
        SpecError: the task's ``train_loader`` has no ``len()``.
    """
    from collections.abc import Sized

    from prl_tune.training import load_task

    task = load_task(spec.task.name, seed=spec.seed, device="cpu", **spec.task.params)
    loader = task.train_loader
    if not isinstance(loader, Sized):
        raise SpecError(
            f"[task] name: a step budget needs the batches per epoch, so {spec.task.name!r}'s "
            f"train_loader must have len() but got a {type(loader).__name__}."
        )
    return spec.task.epochs * len(loader)


def train_trial(
    spec: StudySpec,
    config: Mapping[str, Any],
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_check: Callable[[int, float], None] | None = None,
    on_state: Callable[[EpochMetrics, dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    progress: LossRange | None = None,
    known_to_learn: bool = False,
    evaluate_test: bool = False,
) -> TrainResult:
    """Train the spec's task once with a decoded config ``{"scheduler": name, **params}``.

    Host-neutral: the Optuna objective and a Ray Tune trainable both call this. PLRS gets the
    study's seed and ``[space] warmup_steps`` unless the config sets them. ``on_state`` and
    ``resume`` checkpoint and continue the run (see ``prl_tune.training.train``).
    ``progress`` is filled as the run goes (then ``on_check`` must be ``None``);
    ``known_to_learn`` is the evidence the ``"dead"`` rule needs (``train``'s argument).
    ``evaluate_test``: score the task's ``test_loader`` after the last epoch (default False:
    a tuning trial never touches the test split; ``prl-tune compare``'s evaluation runs do).
    """
    from prl_tune.training import chance_level, train

    params = dict(config)
    scheduler = str(params.pop("scheduler"))
    if SCHEDULERS[scheduler].searches_bounds:
        params.setdefault("seed", spec.seed)
        params.setdefault("warmup_steps", spec.warmup_steps)
    task = load_study_task(spec)
    on_learned = None
    if progress is not None:
        if on_check is not None:
            raise ValueError("on_check must be None when progress is given.")
        progress.chance_loss = chance_level(task)
        on_check, on_learned = progress.observe, progress.learned
    return train(
        task,
        epochs=spec.task.epochs,
        scheduler=scheduler,
        scheduler_params=params,
        optimizer=spec.optimizer,
        device=spec.task.device,
        seed=spec.seed,
        stability=spec.rules,
        on_epoch=on_epoch,
        on_check=on_check,
        on_state=on_state,
        resume=resume,
        known_to_learn=known_to_learn,
        on_learned=on_learned,
        evaluate_test=evaluate_test,
        precision=spec.task.precision,
        channels_last=spec.task.channels_last,
        compile=spec.task.compile,
    )


def objective_value(spec: StudySpec, result: TrainResult) -> float:
    """The trial's value: the metric of the last epoch, or of the best epoch (``[study] value``)."""
    values = [getattr(m, spec.metric) for m in result.history]
    if not values:
        return math.nan
    if spec.study.value == "last":
        return float(values[-1])
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return float(max(finite) if spec.direction == "maximize" else min(finite))


def run_range_test(spec: StudySpec) -> RangeTestResult:
    """Run the LR range test on the study's task and optimizer (seeded, model restored)."""
    from prl_tune.lr_finder import range_test_task

    return range_test_task(
        load_study_task(spec), optimizer=spec.optimizer, seed=spec.seed, device=spec.task.device
    )
