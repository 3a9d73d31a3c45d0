"""The one training loop every backend runs: train, check stability, evaluate, report."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, choice
from prl_tune.schedulers import SCHEDULERS, build_scheduler
from prl_tune.stability import StabilityMonitor, StabilityRules, Verdict
from prl_tune.training._device import select_device
from prl_tune.training._optim import OPTIMIZER_NAMES, OptimizerConfig
from prl_tune.training._taskdata import TaskData

_TAIL_LENGTH = 32
_RUN_STATE_VERSION = 1
_DIRECTIONS = ("maximize", "minimize")
#: ``train``'s ``precision`` choices: float32, bfloat16 autocast, or bfloat16 where supported.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch of training produced.

    Args:
        epoch: The epoch, 1-based.
        step: Optimizer steps done so far in the run.
        train_loss: Mean of the epoch's per-batch training losses.
        val_loss: Sample-weighted mean validation loss.
        val_accuracy: Share of validation samples whose arg-max output is the target; ``nan``
            unless the outputs are ``(batch, classes)`` and the targets integer class indices.
        lr_min: Smallest learning rate applied in the epoch (over all steps and groups).
        lr_mean: Mean learning rate applied in the epoch (over all steps and groups).
        lr_max: Largest learning rate applied in the epoch (over all steps and groups).
        seconds: Wall time of the epoch, evaluation included.
    """

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    lr_min: float
    lr_mean: float
    lr_max: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        """The metrics as a flat ``{name: value}`` dict, e.g. for a backend's report."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Args:
        history: One :class:`EpochMetrics` per finished epoch.
        status: ``"completed"`` or ``"diverged"``.
        steps: Optimizer steps done (for a diverged run: up to the check that stopped it).
        diverged_at_step: The 1-based step at which a stability rule fired (for a non-finite
            training loss: the first non-finite step), or the last step before a non-finite
            validation loss (``None`` if the run completed).
        reason: Why the run stopped early, e.g. ``"non-finite training loss (nan) at step 17"``.
        instability: The kind of instability that stopped the run, a
            :class:`~prl_tune.stability.Verdict` kind (``"non-finite"`` also for a non-finite
            validation loss; ``None`` if the run completed).
        lr_tail: The learning rates (group 0) of the last steps checked, oldest first (for a
            run stopped by a rule on the training loss: up to ``diverged_at_step``).
        loss_tail: The training losses of the same steps as ``lr_tail``.
        learned_at: The step from which the running training loss was below the smaller of
            the chance level and the first step's loss by more than
            ``stability.dead_tolerance`` (``None`` if it never was).
        test_loss: Sample-weighted mean loss on ``task.test_loader``, evaluated once after the
            last epoch (``None`` without a test loader, when ``evaluate_test`` is False, or
            for a diverged run).
        test_accuracy: Accuracy on the same samples, as ``val_accuracy`` is computed
            (``None`` when ``test_loss`` is).
    """

    history: list[EpochMetrics]
    status: str
    steps: int
    diverged_at_step: int | None = None
    reason: str | None = None
    instability: str | None = None
    lr_tail: list[float] = field(default_factory=list)
    loss_tail: list[float] = field(default_factory=list)
    learned_at: int | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None

    @property
    def diverged(self) -> bool:
        """Whether the run was stopped as unstable."""
        return self.status == "diverged"

    @property
    def final(self) -> EpochMetrics | None:
        """The last finished epoch, or ``None`` if none finished."""
        return self.history[-1] if self.history else None

    def best(
        self, metric: str = "val_accuracy", direction: str = "maximize"
    ) -> EpochMetrics | None:
        """The epoch with the best value of ``metric`` (the earliest on ties; NaN never wins).

        Args:
            metric: A field of :class:`EpochMetrics` (default ``"val_accuracy"``).
            direction: ``"maximize"`` (default) or ``"minimize"``.
        """
        if metric not in {f.name for f in dataclasses.fields(EpochMetrics)}:
            raise ValueError(f"metric must be a field of EpochMetrics but got {metric!r}.")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS} but got {direction!r}.")
        sign = 1.0 if direction == "minimize" else -1.0
        finite = [m for m in self.history if not math.isnan(getattr(m, metric))]
        return min(finite, key=lambda m: sign * getattr(m, metric), default=None)


class _Unstable(Exception):
    """Raised inside the epoch loop when a stability rule stops the run."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class _Monitor:
    """Keeps the recent per-step history and applies the stability rules at each check point."""

    def __init__(
        self,
        rules: StabilityRules,
        chance_loss: float | None,
        *,
        known_to_learn: bool = False,
        stateful_optimizer: bool = False,
    ) -> None:
        self.stability = StabilityMonitor(
            rules,
            chance_loss=chance_loss,
            known_to_learn=known_to_learn,
            stateful_optimizer=stateful_optimizer,
        )
        self.loss_tail: deque[float] = deque(maxlen=_TAIL_LENGTH)
        self.lr_tail: deque[float] = deque(maxlen=_TAIL_LENGTH)

    def check(self, losses: list[float], lrs: list[float], first_step: int) -> Verdict | None:
        """Record steps ``first_step, first_step + 1, ...``; return a verdict to stop."""
        verdict = self.stability.observe(losses, first_step)
        # The tails end at the step whose loss decided, as a reader of the result expects.
        end = len(losses) if verdict is None else verdict.step - first_step + 1
        self.loss_tail.extend(losses[:end])
        self.lr_tail.extend(lrs[:end])
        return verdict

    def check_epoch(self, metrics: EpochMetrics) -> Verdict | None:
        """Return a verdict if the end-of-epoch evaluation shows a broken model."""
        if not math.isfinite(metrics.val_loss):
            return Verdict(
                "non-finite",
                metrics.step,
                f"non-finite validation loss ({metrics.val_loss}) after epoch {metrics.epoch} "
                f"(step {metrics.step})",
            )
        return None


@dataclass(frozen=True)
class _Speed:
    """How the model runs: bfloat16 autocast, channels-last images, a compiled forward."""

    bf16: bool = False
    channels_last: bool = False

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def inputs(self, inputs: Tensor, device: torch.device) -> Tensor:
        """``inputs`` on ``device`` (images in channels-last order when asked)."""
        if self.channels_last and inputs.ndim == 4:
            return inputs.to(device, memory_format=torch.channels_last, non_blocking=True)
        return inputs.to(device, non_blocking=True)


def _resolve_speed(precision: str, channels_last: bool, device: torch.device) -> _Speed:
    """``train``'s ``precision`` and ``channels_last`` checked and resolved for ``device``."""
    choice("precision", precision, PRECISIONS)
    if not isinstance(channels_last, bool):
        raise ArgumentTypeError(
            "channels_last", f"must be a bool but got {type(channels_last).__name__}."
        )
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        bf16 = precision == "bf16"
    return _Speed(bf16=bf16, channels_last=channels_last)


def check_compile(compile: object) -> None:
    """``train``'s ``compile``: a bool, or the name of a backend ``torch.compile`` knows."""
    if isinstance(compile, bool):
        return
    if not isinstance(compile, str):
        raise ArgumentTypeError(
            "compile", f"must be a bool or a backend name but got {type(compile).__name__}."
        )
    import torch._dynamo

    choice("compile", compile, tuple(torch._dynamo.list_backends(exclude_tags=())))


def _evaluate(
    model: Callable[[Tensor], Tensor],
    loader: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    device: torch.device,
    name: str = "val_loader",
    speed: _Speed = _Speed(),
) -> tuple[float, float]:
    """Sample-weighted mean loss and accuracy over ``loader`` (one host sync at the end)."""
    module = getattr(model, "_orig_mod", model)  # a compiled model's own module
    assert isinstance(module, torch.nn.Module)
    module.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    classify = True
    with torch.no_grad():
        for inputs, targets in loader:
            inputs = speed.inputs(inputs, device)
            targets = targets.to(device, non_blocking=True)
            with speed.autocast(device):
                outputs = model(inputs)
                loss = loss_fn(outputs, targets)
            size = targets.shape[0]
            loss_sum += loss.detach().float() * size
            count += size
            classify = classify and outputs.ndim == 2 and targets.ndim == 1
            classify = classify and not targets.is_floating_point()
            if classify:
                correct += (outputs.argmax(dim=1) == targets).sum()
    module.train()
    if count == 0:
        raise ValueError(f"{name} must yield at least one batch but yielded none.")
    loss_total, correct_total = torch.stack([loss_sum, correct.float()]).tolist()
    return loss_total / count, correct_total / count if classify else math.nan


def _optimizer_config(
    optimizer: str | OptimizerConfig,
    optimizer_params: Mapping[str, Any] | None,
    grad_clip: float | None,
) -> OptimizerConfig:
    """The run's optimizer settings: ``optimizer`` itself, or built from the name and options."""
    if isinstance(optimizer, OptimizerConfig):
        if optimizer_params or grad_clip is not None:
            raise ArgumentTypeError(
                "optimizer_params",
                "and grad_clip must be unset when optimizer is an OptimizerConfig but got "
                f"{dict(optimizer_params or {})} and {grad_clip}.",
            )
        return optimizer
    options = dict(optimizer_params or {})
    if "lr" in options:
        raise ArgumentValueError(
            "optimizer_params",
            f"must not contain 'lr' (the scheduler sets the learning rate) but got "
            f"lr={options['lr']!r}.",
        )
    choice("optimizer", optimizer, OPTIMIZER_NAMES)
    return OptimizerConfig(optimizer, grad_clip=grad_clip, **options)


def _resolve_rules(stability: StabilityRules | None, check_every: int | None) -> StabilityRules:
    """The rules to apply: ``stability`` (default ``StabilityRules()``) with ``check_every``."""
    if check_every is not None and (
        isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1
    ):
        raise ValueError(f"check_every must be an int >= 1 or None but got {check_every!r}.")
    if stability is None:
        return StabilityRules() if check_every is None else StabilityRules(check_every=check_every)
    if not isinstance(stability, StabilityRules):
        raise TypeError(
            f"stability must be a StabilityRules or None but got {type(stability).__name__}."
        )
    if check_every is not None and check_every != stability.check_every:
        raise ValueError(
            f"check_every must equal stability.check_every ({stability.check_every}) when both "
            f"are given but got {check_every}."
        )
    return stability


def chance_level(task: TaskData) -> float | None:
    """The loss of predicting the class prior, which the collapse rule needs: ``ln C`` for
    ``torch.nn.functional.cross_entropy`` over ``task.num_classes`` classes; ``None``
    otherwise."""
    if task.num_classes is not None and task.loss_fn is torch.nn.functional.cross_entropy:
        return math.log(task.num_classes)
    return None


def train(
    task: TaskData,
    *,
    epochs: int,
    scheduler: str = "plrs",
    scheduler_params: Mapping[str, Any],
    optimizer: str | OptimizerConfig = "sgd",
    optimizer_params: Mapping[str, Any] | None = None,
    grad_clip: float | None = None,
    device: torch.device | str = "auto",
    seed: int = 0,
    check_every: int | None = None,
    stability: StabilityRules | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_check: Callable[[int, float], None] | None = None,
    on_state: Callable[[EpochMetrics, dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    known_to_learn: bool = False,
    on_learned: Callable[[int], None] | None = None,
    evaluate_test: bool = True,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool | str = False,
) -> TrainResult:
    """Train ``task.model`` for ``epochs`` epochs under a learning-rate scheduler.

    Example:
        >>> task = load_task("digits", seed=0)
        >>> result = train(task, epochs=2, scheduler_params={"lr_min": 0.05, "lr_max": 0.1})
        >>> result.status, len(result.history)
        ('completed', 2)

    Each batch runs forward, loss, backward, optional gradient clipping, ``optimizer.step()``
    and ``scheduler.step()``. Per-step losses stay on the device and are brought to the host
    after steps 1, 2, 4, ... (doubling up to ``check_every``), then every ``check_every``
    steps, and at the end of each epoch (a *check*); there a
    :class:`~prl_tune.stability.StabilityMonitor` applies the ``stability`` rules to them. When
    a rule fires (a non-finite loss, an explosion, a sustained high loss, a collapse back to
    chance level, a dead run, ...) the run stops at that check: status ``"diverged"``,
    ``diverged_at_step``, ``reason`` and ``instability`` from the verdict, no further
    evaluation. An optimizer with momentum (SGD with ``momentum > 0``, AdamW) gets
    ``stability.explode_window_stateful`` steps to come back from a spike, plain SGD
    ``stability.explode_window``. The chance level the collapse rule needs is
    ``ln(task.num_classes)`` when the task has ``num_classes`` and uses
    ``torch.nn.functional.cross_entropy``; otherwise the collapse rule is off. After each epoch
    the model is evaluated on ``task.val_loader`` and ``on_epoch`` is called with the metrics;
    a non-finite validation loss also stops the run as diverged (that epoch is neither added
    to the history nor reported). A task with a ``test_loader`` is evaluated on it once,
    after the last epoch of a run that completed (``TrainResult.test_loss`` and
    ``test_accuracy``), never during training, so nothing the run reports or decides depends on
    the test split.

    Args:
        task: The model, data and loss; the model is moved to ``device`` and trained in place.
        epochs: Number of epochs, an int ``>= 1``.
        scheduler: A name from ``prl_tune.schedulers.SCHEDULER_NAMES`` (default ``"plrs"``).
        scheduler_params: The scheduler's parameters, e.g. ``{"lr_min": 0.05, "lr_max": 0.1}``
            for PLRS. For PLRS (or a variant) without a ``seed`` entry, ``seed`` below is used.
        optimizer: ``"sgd"`` (default) or ``"adamw"``, or a whole
            :class:`~prl_tune.training.OptimizerConfig` (then no ``optimizer_params`` or
            ``grad_clip``).
        optimizer_params: Fields of :class:`~prl_tune.training.OptimizerConfig` (default none);
            not ``lr``, which the scheduler sets.
        grad_clip: Clip the global gradient norm to this value, ``> 0``; ``None`` (default)
            does not clip.
        device: Where to train; anything :func:`~prl_tune.training.select_device` accepts
            (default ``"auto"``). Batches are moved there as they come.
        seed: Seeds the global torch RNG inside the run (dropout etc.; the caller's RNG state
            is restored afterwards) and PLRS's draws (default 0). With the same task and seed a
            CPU run is repeatable exactly.
        check_every: Steps between checks, an int ``>= 1``; kept for compatibility, the same
            as ``stability.check_every`` (default ``None``: take it from the rules, 8 by
            default).
        stability: The divergence rules (default ``None``: ``StabilityRules()``, whose
            non-finite rule stops any run with a NaN or infinite loss).
        on_epoch: Called with each epoch's :class:`EpochMetrics`; an exception it raises (such
            as ``optuna.TrialPruned``) propagates unchanged and ends the run.
        on_check: Called as ``on_check(step, running_loss)`` after each check the run passes
            (after steps 1, 2, 4, ..., then every ``check_every`` steps, and at the end of each
            epoch) with
            the last step done and the smoothed training loss (``nan`` while no step loss was
            finite); not called at the check that stops the run. Exceptions propagate
            unchanged.
        on_state: Called after each epoch, before ``on_epoch``, as ``on_state(metrics,
            state)``: ``state`` is everything needed to continue the run from the end of that
            epoch (model, optimizer, scheduler (PLRS: its generator), the stability monitor,
            the history, the torch RNG and the training loader's shuffling state), as a dict
            ``torch.save`` can write. Save it to checkpoint the run.
        known_to_learn: Whether a less aggressive LR range of the same setup is known to have
            learned within ``stability.dead_window`` steps (default False); only then can
            the ``"dead"`` rule stop a run that never gets below its level (see
            :class:`~prl_tune.stability.StabilityMonitor`): without that evidence such a run
            may just be slow.
        on_learned: Called once as ``on_learned(step)`` at the check where the training loss
            is first seen below its level by more than ``stability.dead_tolerance`` (the
            evidence a later, more aggressive trial's ``known_to_learn`` rests on; see
            :attr:`TrainResult.learned_at`).
        resume: A ``state`` from ``on_state`` of a run with the same task, scheduler,
            optimizer, rules and seed: training continues at the next epoch, and the rest of
            the run (LRs drawn, batches, losses) is the one the uninterrupted run would have
            had. The task's model is built as usual and then overwritten by the state.
        evaluate_test: Evaluate ``task.test_loader`` after the last epoch (default True);
            a tuning trial passes False, so no trial of a search ever touches the test split.
        precision: ``"fp32"`` (default: float32 throughout), ``"bf16"`` (forward pass and loss
            under ``torch.autocast`` with bfloat16, on any device; weights, gradients and the
            optimizer stay float32) or ``"auto"`` (bf16 on a CUDA device that supports it,
            else fp32).
        channels_last: Keep the model's weights and 4-D input batches in channels-last memory
            order (default False), which convolutions on recent GPUs run faster.
        compile: Run the model's forward pass through ``torch.compile`` (default False):
            ``True`` with its default backend (inductor), or a backend's name such as
            ``"cudagraphs"`` or ``"aot_eager"``. The first steps are slower while it compiles;
            checkpoints hold the same state as without it.

    Raises:
        ValueError: An argument out of range, ``check_every`` different from
            ``stability.check_every``, an unknown ``precision``, or an empty loader.
        TypeError: ``task.train_loader`` has no ``len()``, or ``stability`` is not a
            :class:`~prl_tune.stability.StabilityRules`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ArgumentValueError("epochs", f"must be an int >= 1 but got {epochs!r}.")
    config = _optimizer_config(optimizer, optimizer_params, grad_clip)
    rules = _resolve_rules(stability, check_every)
    if not isinstance(task.train_loader, Sized):
        raise TypeError(
            "task.train_loader must have len() (batches per epoch) but got a "
            f"{type(task.train_loader).__name__}."
        )
    steps_per_epoch = len(task.train_loader)
    if steps_per_epoch < 1:
        raise ValueError(f"task.train_loader must have len() >= 1 but got {steps_per_epoch}.")
    resolved = select_device(device)
    speed = _resolve_speed(precision, channels_last, resolved)
    check_compile(compile)
    scheduler_params = dict(scheduler_params)
    if "seed" in getattr(SCHEDULERS.get(scheduler), "defaults", {}):  # PLRS and its variants
        scheduler_params.setdefault("seed", seed)
    fork_devices = [resolved.index or 0] if resolved.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        run = _Run(
            task, resolved, config, rules, on_check, known_to_learn, on_learned, speed, compile
        )
        result = run.run(
            epochs, scheduler, scheduler_params, steps_per_epoch, on_epoch, on_state, resume
        )
        if evaluate_test and task.test_loader is not None and not result.diverged:
            result.test_loss, result.test_accuracy = _evaluate(
                run.forward, task.test_loader, task.loss_fn, resolved, "test_loader", speed
            )
        return result


class _Run:
    """The state of one call of :func:`train`."""

    def __init__(
        self,
        task: TaskData,
        device: torch.device,
        optimizer: OptimizerConfig,
        rules: StabilityRules,
        on_check: Callable[[int, float], None] | None,
        known_to_learn: bool = False,
        on_learned: Callable[[int], None] | None = None,
        speed: _Speed = _Speed(),
        compile: bool | str = False,
    ) -> None:
        self.task = task
        self.device = device
        self.speed = speed
        self.model = task.model.to(device)
        if speed.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.forward: Callable[[Tensor], Tensor] = self.model
        if compile is not False:
            backend = "inductor" if compile is True else compile
            self.forward = torch.compile(self.model, backend=backend)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer.build(self.params)
        self.grad_clip = optimizer.grad_clip
        self.check_every = rules.check_every
        self.monitor = _Monitor(
            rules,
            chance_level(task),
            known_to_learn=known_to_learn,
            stateful_optimizer=optimizer.name != "sgd" or optimizer.momentum > 0,
        )
        self.on_check = on_check
        self.on_learned = on_learned
        self._told_learned = False
        self.step = 0

    def run(
        self,
        epochs: int,
        scheduler: str,
        scheduler_params: Mapping[str, Any],
        steps_per_epoch: int,
        on_epoch: Callable[[EpochMetrics], None] | None,
        on_state: Callable[[EpochMetrics, dict[str, Any]], None] | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> TrainResult:
        sched = build_scheduler(
            scheduler,
            self.optimizer,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            **scheduler_params,
        )
        history: list[EpochMetrics] = []
        if resume is not None:
            history = self.load_state_dict(resume, sched)
        self.model.train()
        for epoch in range(len(history) + 1, epochs + 1):
            started = time.perf_counter()
            try:
                train_loss, lrs = self._train_epoch(sched)
            except _Unstable as unstable:
                return self._result(history, unstable.verdict)
            val_loss, val_accuracy = _evaluate(
                self.forward,
                self.task.val_loader,
                self.task.loss_fn,
                self.device,
                speed=self.speed,
            )
            metrics = EpochMetrics(
                epoch=epoch,
                step=self.step,
                train_loss=train_loss,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr_min=min(lrs),
                lr_mean=math.fsum(lrs) / len(lrs),
                lr_max=max(lrs),
                seconds=time.perf_counter() - started,
            )
            verdict = self.monitor.check_epoch(metrics)
            if verdict is not None:
                return self._result(history, verdict)
            history.append(metrics)
            if on_state is not None:
                on_state(metrics, self.state_dict(sched, history))
            if on_epoch is not None:
                on_epoch(metrics)
        return self._result(history, None)

    def state_dict(
        self, sched: torch.optim.lr_scheduler.LRScheduler, history: list[EpochMetrics]
    ) -> dict[str, Any]:
        """Everything needed to continue this run after the last epoch of ``history``."""
        state: dict[str, Any] = {
            "version": _RUN_STATE_VERSION,
            "epoch": len(history),
            "step": self.step,
            "history": [m.as_dict() for m in history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": sched.state_dict(),
            "monitor": self.monitor.stability.state_dict(),
            "loss_tail": list(self.monitor.loss_tail),
            "lr_tail": list(self.monitor.lr_tail),
            "torch_rng": torch.get_rng_state(),
            "loader": _loader_state(self.task.train_loader),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(
        self, state: Mapping[str, Any], sched: torch.optim.lr_scheduler.LRScheduler
    ) -> list[EpochMetrics]:
        """Restore a :meth:`state_dict`; returns the history of the epochs it covers."""
        if not isinstance(state, Mapping) or state.get("version") != _RUN_STATE_VERSION:
            raise ArgumentValueError(
                "resume",
                f"must be a state from on_state (version {_RUN_STATE_VERSION}) but got "
                f"{type(state).__name__} with version "
                f"{state.get('version') if isinstance(state, Mapping) else None!r}.",
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        self.monitor.stability.load_state_dict(state["monitor"])
        self.monitor.loss_tail.extend(state["loss_tail"])
        self.monitor.lr_tail.extend(state["lr_tail"])
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        _load_loader_state(self.task.train_loader, state["loader"])
        return [EpochMetrics(**m) for m in state["history"]]

    def _train_epoch(
        self, sched: torch.optim.lr_scheduler.LRScheduler
    ) -> tuple[float, list[float]]:
        """One pass over the training data: the mean training loss and every LR applied."""
        pending = torch.empty(self.check_every, device=self.device)
        pending_lrs: list[float] = []
        epoch_lrs: list[float] = []
        loss_sum = 0.0
        batches = 0
        for inputs, targets in self.task.train_loader:
            inputs = self.speed.inputs(inputs, self.device)
            targets = targets.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with self.speed.autocast(self.device):
                loss = self.task.loss_fn(self.forward(inputs), targets)
            loss.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            lrs = [float(lr) for lr in sched.get_last_lr()]  # the LRs this step applies
            self.optimizer.step()
            sched.step()
            pending[len(pending_lrs)] = loss.detach()  # stays on the device: no sync
            pending_lrs.append(lrs[0])
            epoch_lrs.extend(lrs)
            self.step += 1
            batches += 1
            # The first checks come after steps 1, 2, 4, ...: a run that blows up at once is
            # stopped within a step or two, for a handful of extra syncs per run.
            done_before = self.step - len(pending_lrs)
            if len(pending_lrs) >= min(self.check_every, max(1, done_before)):
                loss_sum += math.fsum(self._check(pending, pending_lrs))
                pending_lrs = []
        if batches == 0:
            raise ValueError("task.train_loader must yield at least one batch but yielded none.")
        if pending_lrs:
            loss_sum += math.fsum(self._check(pending, pending_lrs))
        return loss_sum / batches, epoch_lrs

    def _check(self, pending: Tensor, lrs: list[float]) -> list[float]:
        """Bring the pending losses to the host (one sync) and apply the stability rules.

        Raises:
            _Unstable: A rule says the run must stop now.
        """
        losses: list[float] = pending[: len(lrs)].tolist()
        verdict = self.monitor.check(losses, lrs, first_step=self.step - len(lrs) + 1)
        learned = self.monitor.stability.learned_at
        if learned is not None and not self._told_learned and self.on_learned is not None:
            self._told_learned = True
            self.on_learned(learned)
        if verdict is not None:
            raise _Unstable(verdict)
        if self.on_check is not None:
            running = self.monitor.stability.running_loss
            self.on_check(self.step, math.nan if running is None else running)
        return losses

    def _result(self, history: list[EpochMetrics], verdict: Verdict | None) -> TrainResult:
        return TrainResult(
            history=history,
            status="completed" if verdict is None else "diverged",
            steps=self.step,
            diverged_at_step=None if verdict is None else verdict.step,
            reason=None if verdict is None else verdict.reason,
            instability=None if verdict is None else verdict.kind,
            lr_tail=list(self.monitor.lr_tail),
            loss_tail=list(self.monitor.loss_tail),
            learned_at=self.monitor.stability.learned_at,
        )


def _loader_state(loader: object) -> Any:
    """The shuffling state of a training loader: its own ``state_dict()`` when it has one
    (prl_tune's built-in loaders, torchdata's ``StatefulDataLoader``), else the state of its
    ``generator`` (a ``torch.utils.data.DataLoader`` given one), else ``None`` (a loader that
    draws from the global torch RNG, whose state is saved separately)."""
    state_dict = getattr(loader, "state_dict", None)
    if callable(state_dict):
        return {"state_dict": state_dict()}
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        return {"generator": generator.get_state()}
    return None


def _load_loader_state(loader: object, state: Any) -> None:
    """Restore what :func:`_loader_state` saved."""
    if state is None:
        return
    if "state_dict" in state:
        loader.load_state_dict(state["state_dict"])  # type: ignore[attr-defined]
    else:
        loader.generator.set_state(state["generator"])  # type: ignore[attr-defined]
