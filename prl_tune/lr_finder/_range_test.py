"""The learning-rate range test: sweep the LR upwards for a few steps, read lr_max off the loss."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from prl_tune.lr_finder._result import RangeTestResult
from prl_tune.lr_finder._rules import suggest
from prl_tune.schedulers import set_lr
from prl_tune.training import OptimizerConfig, TaskData, build_optimizer, select_device

STEP_MODES: tuple[str, ...] = ("exp", "linear")


def _check_arguments(
    start_lr: float,
    end_lr: float,
    num_iter: int,
    step_mode: str,
    smooth_f: float,
    diverge_th: float,
) -> None:
    for name, value in (
        ("start_lr", start_lr),
        ("end_lr", end_lr),
        ("smooth_f", smooth_f),
        ("diverge_th", diverge_th),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number but got {type(value).__name__} {value!r}.")
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start_lr must be a finite number > 0 but got {start_lr}.")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(
            f"end_lr must be a finite number > start_lr ({start_lr}) but got {end_lr}."
        )
    if isinstance(num_iter, bool) or not isinstance(num_iter, int) or num_iter < 2:
        raise ValueError(f"num_iter must be an int >= 2 but got {num_iter!r}.")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES} but got {step_mode!r}.")
    if not 0.0 <= smooth_f < 1.0:
        raise ValueError(f"smooth_f must be in [0, 1) but got {smooth_f}.")
    if not (math.isfinite(diverge_th) and diverge_th > 1.0):
        raise ValueError(f"diverge_th must be a finite number > 1 but got {diverge_th}.")


def _sweep(start_lr: float, end_lr: float, num_iter: int, step_mode: str) -> list[float]:
    """The LR of each of the ``num_iter`` steps; the first is ``start_lr``, the last ``end_lr``."""
    last = num_iter - 1
    if step_mode == "exp":
        ratio = end_lr / start_lr
        lrs = [start_lr * ratio ** (i / last) for i in range(num_iter)]
    else:
        lrs = [start_lr + (end_lr - start_lr) * i / last for i in range(num_iter)]
    lrs[-1] = end_lr  # exact, whatever the rounding
    return lrs


def _batches(loader: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield the loader's batches forever, starting a new pass whenever one ends."""
    passes = 0
    while True:
        yielded = 0
        for batch in loader:
            yielded += 1
            yield batch
        passes += 1
        if yielded == 0:
            raise ValueError(
                f"train_loader must yield batches on every pass but pass {passes} yielded none "
                "(a one-shot iterator cannot be cycled: pass a re-iterable loader or lower "
                "num_iter)."
            )


class _Snapshot:
    """An exact copy of a model's and an optimizer's state, put back in place by :meth:`restore`.

    Tensors are copied back into the same tensor objects where shape, dtype and device still
    match (so compiled or capturable optimizers keep their references), and replaced otherwise.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            self.model_state = copy.deepcopy(model.state_dict())
            self.grads = [
                None if p.grad is None else p.grad.detach().clone() for p in model.parameters()
            ]
            self.training = [m.training for m in model.modules()]
            self.optimizer_state: dict[Any, Any] = {
                key: copy.deepcopy(state) for key, state in optimizer.state.items()
            }
            self.groups = [
                {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups
            ]
        self.device = _single_device(model)

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            if self.device is not None:
                model.to(self.device)
            model.load_state_dict(self.model_state)
            for param, grad in zip(model.parameters(), self.grads, strict=True):
                param.grad = None if grad is None else grad.clone()
            for module, training in zip(model.modules(), self.training, strict=True):
                module.training = training
            for key in list(optimizer.state):
                if key not in self.optimizer_state:
                    del optimizer.state[key]
            for key, saved in self.optimizer_state.items():
                current = optimizer.state.get(key)
                optimizer.state[key] = _copy_into(current, saved) if current else saved
            for group, saved_group in zip(optimizer.param_groups, self.groups, strict=True):
                for name in [k for k in group if k != "params" and k not in saved_group]:
                    del group[name]
                for name, value in saved_group.items():
                    group[name] = _copy_into(group.get(name), value)
        # The copies are spent: a second restore must not hand out the same objects again.
        self.optimizer_state = {}


def _copy_into(current: Any, saved: Any) -> Any:
    """``saved``, written into ``current`` in place where both are matching tensors."""
    if isinstance(current, Tensor) and isinstance(saved, Tensor):
        same = (current.shape, current.dtype, current.device) == (
            saved.shape,
            saved.dtype,
            saved.device,
        )
        if same:
            return current.copy_(saved)
        return saved
    if isinstance(current, dict) and isinstance(saved, dict):
        return {key: _copy_into(current.get(key), value) for key, value in saved.items()}
    return saved


def _single_device(model: torch.nn.Module) -> torch.device | None:
    """The one device of the model's tensors; ``None`` for a model without tensors.

    Raises:
        ValueError: The model is spread over several devices.
    """
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    if len(devices) > 1:
        raise ValueError(
            "model must have all its parameters and buffers on one device but they are on "
            f"{sorted(str(d) for d in devices)}."
        )
    return next(iter(devices), None)


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[tuple[Tensor, Tensor]],
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    num_iter: int = 100,
    step_mode: str = "exp",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
    device: torch.device | str = "cpu",
    restore: bool = True,
) -> RangeTestResult:
    """Run an LR range test: train with a rising LR, one step per batch, and record the loss.

    Example:
        >>> model = torch.nn.Linear(4, 3)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> data = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(5)]
        >>> result = range_test(model, optimizer, data, num_iter=20, end_lr=1.0)
        >>> len(result.lrs) <= 20
        True

    At step ``i`` (from 0) every param group gets the LR ``start_lr * (end_lr / start_lr) **
    (i / (num_iter - 1))`` (``"exp"``) or ``start_lr + (end_lr - start_lr) * i / (num_iter -
    1)`` (``"linear"``); tensor LRs are filled in place. Each step runs forward, ``loss_fn``,
    backward and ``optimizer.step()`` on the next batch; the loader is started again whenever
    it runs out, so ``num_iter`` may exceed its length. The run stops early after the first
    step whose smoothed loss is not finite or exceeds ``diverge_th`` times the best smoothed
    loss so far. The global RNG is not seeded or forked here (see :func:`range_test_task`).

    Args:
        model: The model; it is moved to ``device`` and put in training mode.
        optimizer: An optimizer over (some of) the model's parameters; its LR is overwritten.
        train_loader: Batches ``(inputs, targets)``, moved to ``device`` as they come; it must
            be re-iterable if ``num_iter`` exceeds its length.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar loss (default
            ``torch.nn.functional.cross_entropy``).
        start_lr: The first LR, ``> 0`` (default ``1e-5``).
        end_lr: The last LR, ``> start_lr`` (default ``10.0``).
        num_iter: The number of steps, an int ``>= 2`` (default 100).
        step_mode: ``"exp"`` (default: evenly spaced on a log scale) or ``"linear"``.
        smooth_f: Weight of the newest loss in the moving average, in ``[0, 1)`` (default
            0.05, as pytorch-lr-finder; Lightning's ``beta`` is ``1 - smooth_f``). ``0`` turns
            smoothing off.
        diverge_th: Stop once the smoothed loss exceeds this multiple of its best value,
            ``> 1`` (default 5.0).
        device: Where to run; anything :func:`~prl_tune.training.select_device` accepts
            (default ``"cpu"``).
        restore: Put back afterwards, bit for bit, the model's parameters, buffers, gradients,
            training flags and device and the optimizer's state and param-group settings (the
            LR included) as they were before the call (default True), as pytorch-lr-finder's
            ``reset()``; a copy of that state is held in memory, on its devices, meanwhile.
            With False the model and optimizer are left as the sweep ended.

    Raises:
        ValueError: An argument out of range (checked before anything is touched), a model
            spread over several devices, or a loader that yields no batches.
        TypeError: A numeric argument of the wrong type.
    """
    _check_arguments(start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th)
    resolved = select_device(device)
    snapshot = _Snapshot(model, optimizer) if restore else None
    if snapshot is None:
        _single_device(model)
    try:
        return _run(
            model,
            optimizer,
            train_loader,
            loss_fn,
            _sweep(start_lr, end_lr, num_iter, step_mode),
            smooth_f,
            diverge_th,
            resolved,
        )
    finally:
        if snapshot is not None:
            snapshot.restore(model, optimizer)


def _run(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    sweep: list[float],
    smooth_f: float,
    diverge_th: float,
    device: torch.device,
) -> RangeTestResult:
    moved = _single_device(model) not in (None, device)
    model.to(device)
    if moved and optimizer.state:
        # Cast the optimizer's state to the parameters' new device (torch's own policy).
        optimizer.load_state_dict(optimizer.state_dict())
    model.train()
    lrs: list[float] = []
    losses: list[float] = []
    raw_losses: list[float] = []
    diverged_lr: float | None = None
    average = 0.0
    best = math.inf
    batches = _batches(train_loader)
    for step, lr in enumerate(sweep):
        set_lr(optimizer, lr)
        inputs, targets = next(batches)
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        raw = float(loss.detach())
        if smooth_f > 0.0:
            average = smooth_f * raw + (1.0 - smooth_f) * average
            smoothed = average / (1.0 - (1.0 - smooth_f) ** (step + 1))
        else:
            smoothed = raw
        lrs.append(lr)
        raw_losses.append(raw)
        losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge_th * best:
            diverged_lr = lr
            break
        best = min(best, smoothed)
    lr_max, lr_min, steepest_lr, min_loss_lr = suggest(lrs, losses)
    return RangeTestResult(
        lrs=lrs,
        losses=losses,
        raw_losses=raw_losses,
        diverged_lr=diverged_lr,
        suggested_lr_max=lr_max,
        suggested_lr_min=lr_min,
        steepest_lr=steepest_lr,
        min_loss_lr=min_loss_lr,
    )


def range_test_task(
    task: TaskData,
    *,
    optimizer: str | OptimizerConfig = "sgd",
    optimizer_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    **kwargs: Any,
) -> RangeTestResult:
    """Run :func:`range_test` on a task's model and training data with a fresh optimizer.

    Example:
        >>> from prl_tune.training import load_task
        >>> result = range_test_task(load_task("digits", model="cnn"), seed=0)
        >>> result.suggested_lr_max  # doctest: +SKIP

    The optimizer is built with :func:`~prl_tune.training.build_optimizer` over
    ``task.model``'s trainable parameters. The run is seeded: the global torch RNG is set to
    ``seed`` inside :func:`torch.random.fork_rng`, so the caller's RNG state is untouched and
    the same task and seed give the same result on the same CPU and thread count. The curve is
    chaotic, though: another seed, or float rounding that differs (another
    ``torch.get_num_threads()``), can move ``min_loss_lr`` by a factor of several (the spread
    over seeds is in ``benchmarks/README.md``).

    Args:
        task: The model, data and loss; ``task.loss_fn`` is used unless ``kwargs`` has one.
        optimizer: ``"sgd"`` (default), ``"adamw"``, or an
            :class:`~prl_tune.training.OptimizerConfig` (then no ``optimizer_params``).
        optimizer_params: Options of :func:`~prl_tune.training.build_optimizer` except ``lr``
            (default none: plain SGD).
        seed: Seeds the global torch RNG inside the run (default 0).
        device: Where to run (default ``"auto"``: CUDA if available, else the CPU).
        kwargs: Further arguments of :func:`range_test` (``start_lr``, ``end_lr``,
            ``num_iter``, ``step_mode``, ``smooth_f``, ``diverge_th``, ``restore``,
            ``loss_fn``).

    Raises:
        ValueError: An argument out of range, or ``lr`` in ``optimizer_params``.
    """
    params = dict(optimizer_params or {})
    if "lr" in params:
        raise ValueError(
            "optimizer_params must not contain 'lr' (the range test sets the learning rate) "
            f"but got lr={params['lr']!r}."
        )
    resolved = select_device(device)
    trainable = [p for p in task.model.parameters() if p.requires_grad]
    opt = build_optimizer(trainable, optimizer, **params)
    kwargs.setdefault("loss_fn", task.loss_fn)
    fork_devices = [resolved.index or 0] if resolved.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        return range_test(task.model, opt, task.train_loader, device=resolved, **kwargs)
