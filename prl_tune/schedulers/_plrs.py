"""The probabilistic learning-rate scheduler (PLRS, arXiv 2407.07613)."""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Sequence
from typing import Any, TypeGuard

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from prl_tune._checks import choice, integer, real
from prl_tune.schedulers._lr import set_group_lr

_STATE_VERSION = 2
#: Versions :meth:`PLRS.load_state_dict` reads (a version-1 state is a paper PLRS: a uniform
#: draw at every step).
_READABLE_VERSIONS = (1, 2)
_BLOCK_SIZE = 1024
_MAX_SEED = 2**64 - 1


def _check_float(name: str, value: object, expected: str) -> float:
    """Return ``value`` as a float or raise ``TypeError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected} but got {type(value).__name__} {value!r}.")
    return float(value)


def _is_sequence(value: object) -> TypeGuard[Sequence[object]]:
    """Whether ``value`` is a sequence of bounds (a string is not)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _as_group_list(name: str, value: object, n_groups: int) -> list[float]:
    """Expand a scalar to ``n_groups`` floats or check a sequence of one float per group."""
    if _is_sequence(value):
        if len(value) != n_groups:
            raise ValueError(
                f"{name} must have one value per param group ({n_groups}) "
                f"but got {len(value)} values: {list(value)!r}."
            )
        return [_check_float(f"{name}[{i}]", v, "a float") for i, v in enumerate(value)]
    expected = "a float or a sequence of floats (one per param group)"
    return [_check_float(name, value, expected)] * n_groups


def _check_bounds(lr_min: object, lr_max: object, n_groups: int) -> tuple[list[float], list[float]]:
    """Validate ``0 <= lr_min <= lr_max < inf`` per group and return both as lists."""
    lows = _as_group_list("lr_min", lr_min, n_groups)
    highs = _as_group_list("lr_max", lr_max, n_groups)
    for i, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
        lo_name = f"lr_min[{i}]" if _is_sequence(lr_min) else "lr_min"
        hi_name = f"lr_max[{i}]" if _is_sequence(lr_max) else "lr_max"
        if not (math.isfinite(lo) and lo >= 0.0):
            raise ValueError(f"{lo_name} must be finite and >= 0 but got {lo}.")
        if not (math.isfinite(hi) and hi >= lo):
            raise ValueError(f"{hi_name} must be finite and >= {lo_name} ({lo}) but got {hi}.")
    return lows, highs


def _check_seed(seed: object) -> int:
    """Return a valid generator seed; ``None`` draws one from OS entropy."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None or an int but got {type(seed).__name__} {seed!r}.")
    if not 0 <= int(seed) <= _MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**64 - 1] but got {seed}.")
    return int(seed)


def _check_warmup(warmup_steps: object) -> int:
    """Return ``warmup_steps`` as an int >= 0."""
    return int(integer("warmup_steps", warmup_steps, minimum=0))


#: The distributions of a draw on ``[lr_min, lr_max]``; the first is the paper's.
DISTRIBUTIONS = ("uniform", "log-uniform", "beta")


def _check_draw(
    draw_every: object,
    distribution: object,
    beta_shape: object,
    lows: list[float],
    *,
    per_group: bool,
) -> tuple[int, str, float]:
    """The checked ``(draw_every, distribution, beta_shape)``; a log-uniform draw needs every
    ``lr_min > 0`` (named ``lr_min[i]`` when the bounds were given ``per_group``)."""
    every = int(integer("draw_every", draw_every, minimum=1))
    name = choice("distribution", distribution, DISTRIBUTIONS)
    shape = float(real("beta_shape", beta_shape, low=0.0, low_open=True))
    if name == "log-uniform":
        for i, lo in enumerate(lows):
            if lo <= 0.0:
                where = f"lr_min[{i}]" if per_group else "lr_min"
                raise ValueError(
                    f"{where} must be > 0 for distribution 'log-uniform' (log(0) is undefined) "
                    f"but got {lo}."
                )
    return every, name, shape


class PLRS(LRScheduler):
    """Probabilistic learning-rate scheduler: a fresh uniform draw of the LR at every step.

    At step ``t`` (``t = 0`` is the draw made at construction) each param group ``i`` gets an
    independent draw ``u ~ U[0, 1)`` and the learning rate

    ``lr = min(lr_min[i] + (lr_max[i] - lr_min[i]) * u, lr_max[i])``

    computed in float64, so every LR lies in ``[lr_min[i], lr_max[i]]``. With
    ``warmup_steps = W > 0`` and ``t < W`` that value is multiplied by ``(t + 1) / (W + 1)``
    (a linear ramp, so during warmup the LR lies in ``(t + 1) / (W + 1) * [lr_min, lr_max]``);
    from ``t >= W`` on the draws are plain. ``lr_min == lr_max`` gives a constant LR.

    Two choices the paper fixes are arguments, with the paper's as the defaults:

    - ``draw_every = k``: a new draw at the steps ``t`` with ``t % k == 0`` (``t = 0, k, 2k,
      ...``); in between the LR keeps its last draw (the warmup ramp still applies per step).
      ``k = 1`` is the paper's draw at every step; ``k = steps_per_epoch`` draws once per epoch
      when the scheduler is stepped once per optimizer step (``build_scheduler`` takes
      ``draw_every="epoch"`` for that).
    - ``distribution``: the same uniform ``u`` mapped through a quantile function ``Q`` onto the
      bounds, ``lr = lr_min + (lr_max - lr_min) * Q(u)`` clipped to ``[lr_min, lr_max]``:
      ``"uniform"`` (the paper, ``Q(u) = u``), ``"log-uniform"`` (``lr = lr_min *
      (lr_max / lr_min) ** u``; needs ``lr_min > 0``) or ``"beta"`` (``Q`` the quantile
      function of the symmetric ``Beta(a, a)``, ``a = beta_shape``: centred on
      :attr:`lr_center`, more concentrated there the larger ``a``; ``a = 1`` is uniform).
      Every distribution draws one uniform per group and draw, so one seed gives coupled draws
      across distributions (common random numbers for an ablation).

    Draws come only from the scheduler's own CPU :class:`torch.Generator`, never from the global
    torch, NumPy or :mod:`random` state. The same ``seed`` gives the same sequence, and
    :meth:`state_dict` holds everything needed to continue a sequence bit-identically, even in a
    scheduler built with another seed. LRs that are tensors (``capturable`` or compiled
    optimizers) are written in place. Call :meth:`step` once per optimizer step.

    Example:
        >>> import torch
        >>> from prl_tune.schedulers import PLRS
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> scheduler = PLRS(optimizer, lr_min=0.01, lr_max=0.1, seed=0)
        >>> for _ in range(3):
        ...     optimizer.step()
        ...     scheduler.step()
        >>> 0.01 <= scheduler.get_last_lr()[0] <= 0.1
        True

    Args:
        optimizer: The wrapped optimizer.
        lr_min: Lower bound of the draws, a float or one float per param group;
            ``0 <= lr_min``.
        lr_max: Upper bound of the draws, a float or one float per param group;
            ``lr_min <= lr_max < inf``.
        seed: Seed of the scheduler's generator. Default ``None``: a seed is drawn from OS
            entropy; it is stored in :attr:`seed` and in :meth:`state_dict`.
        warmup_steps: Number of draws scaled by the linear warmup ramp. Default ``0``.
        draw_every: Steps between draws, an int ``>= 1``. Default ``1`` (every step).
        distribution: ``"uniform"`` (default), ``"log-uniform"`` or ``"beta"``.
        beta_shape: The shape ``a > 0`` of ``Beta(a, a)`` for ``distribution="beta"``
            (ignored otherwise). Default ``2.0``.

    Raises:
        TypeError: An argument has the wrong type (e.g. a string or a bool).
        ValueError: An argument has a wrong value or a sequence of bounds has the wrong length.
    """

    # PLRS reports its draws as python floats, also for tensor LRs.
    _last_lr: list[float]  # type: ignore[assignment]

    def __init__(
        self,
        optimizer: Optimizer,
        lr_min: float | Sequence[float],
        lr_max: float | Sequence[float],
        *,
        seed: int | None = None,
        warmup_steps: int = 0,
        draw_every: int = 1,
        distribution: str = "uniform",
        beta_shape: float = 2.0,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}."
            )
        n_groups = len(optimizer.param_groups)
        self._lr_min, self._lr_max = _check_bounds(lr_min, lr_max, n_groups)
        self._warmup_steps = _check_warmup(warmup_steps)
        self._draw_every, self._distribution, self._beta_shape = _check_draw(
            draw_every, distribution, beta_shape, self._lr_min, per_group=_is_sequence(lr_min)
        )
        self._seed = _check_seed(seed)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self._seed)
        self._block_size = _BLOCK_SIZE
        self._block_state = self._generator.get_state()
        self._block: list[list[float]] = []
        self._offset = 0
        self._held: list[float] | None = None  # the last draw (unscaled), kept between draws
        self._drawn: list[float] = []
        self._next_block()
        super().__init__(optimizer)

    # ----------------------------------------------------------------------------- properties

    @property
    def lr_min(self) -> list[float]:
        """Lower bound of the draws, one per param group."""
        return list(self._lr_min)

    @property
    def lr_max(self) -> list[float]:
        """Upper bound of the draws, one per param group."""
        return list(self._lr_max)

    @property
    def lr_center(self) -> list[float]:
        """Centre ``(lr_min + lr_max) / 2`` of the draws, one per param group."""
        return [(lo + hi) / 2.0 for lo, hi in zip(self._lr_min, self._lr_max, strict=True)]

    @property
    def seed(self) -> int:
        """Seed the generator was started from (drawn from OS entropy if none was given)."""
        return self._seed

    @property
    def warmup_steps(self) -> int:
        """Number of draws scaled by the linear warmup ramp."""
        return self._warmup_steps

    @property
    def draw_every(self) -> int:
        """Steps between draws (``1``: every step, the paper)."""
        return self._draw_every

    @property
    def distribution(self) -> str:
        """The distribution of a draw on the bounds: uniform, log-uniform or beta."""
        return self._distribution

    @property
    def beta_shape(self) -> float:
        """The shape ``a`` of ``Beta(a, a)`` (used by ``distribution="beta"`` only)."""
        return self._beta_shape

    # ------------------------------------------------------------------------------- drawing

    def _next_block(self) -> None:
        """Draw the next block of LRs; remember the generator state at its start."""
        self._block_state = self._generator.get_state()
        self._block = self._draw_block(self._block_size)
        self._offset = 0

    def _draw_block(self, size: int) -> list[list[float]]:
        """Return ``size`` rows of one LR per group from the generator's next uniforms."""
        u = torch.rand(size, len(self._lr_min), generator=self._generator, dtype=torch.float64)
        low = torch.tensor(self._lr_min, dtype=torch.float64)
        high = torch.tensor(self._lr_max, dtype=torch.float64)
        if self._distribution == "log-uniform":
            log_ratio = torch.log(high) - torch.log(low)  # no overflow of high / low
            lrs = torch.maximum(torch.exp(u.mul_(log_ratio)).mul_(low), low)
        else:
            if self._distribution == "beta":
                from scipy.special import betaincinv

                a = self._beta_shape
                u = torch.from_numpy(betaincinv(a, a, u.numpy()))
            width = torch.tensor(
                [hi - lo for lo, hi in zip(self._lr_min, self._lr_max, strict=True)],
                dtype=torch.float64,
            )
            lrs = u.mul_(width).add_(low)
        rows: list[list[float]] = torch.minimum(lrs, high).tolist()
        return rows

    def _next_lrs(self) -> list[float]:
        """The LRs of step ``last_epoch``: a new row of draws at the steps ``t % draw_every ==
        0`` (the last one otherwise), with the warmup ramp applied."""
        t = self.last_epoch
        if self._held is None or t % self._draw_every == 0:
            if self._offset == len(self._block):
                self._next_block()
            self._held = self._block[self._offset]
            self._offset += 1
        row = self._held
        if t < self._warmup_steps:
            scale = (t + 1) / (self._warmup_steps + 1)
            return [lr * scale for lr in row]
        return row  # never changed in place; get_last_lr() and state_dict() hand out copies

    # ------------------------------------------------------------------- LRScheduler contract

    def get_lr(self) -> list[float | torch.Tensor]:
        """Draw the next learning rates (one per param group); this advances the generator.

        Called by :meth:`step`; to read the current LRs use :meth:`get_last_lr`.
        """
        if not self._get_lr_called_within_step:
            warnings.warn(
                "PLRS.get_lr() draws new learning rates and advances the generator; "
                "use get_last_lr() to read the current ones.",
                UserWarning,
                stacklevel=2,
            )
        lrs = self._next_lrs()
        self._drawn = lrs
        return list(lrs)

    def step(self, epoch: int | None = None) -> None:
        """Draw a new learning rate for each param group and write it to the optimizer.

        Args:
            epoch: Deprecated in :class:`~torch.optim.lr_scheduler.LRScheduler`; if given it
                sets ``last_epoch`` (which only matters for the warmup ramp). Default ``None``.
        """
        if epoch is not None or self._step_count <= 1:
            # The base class handles the deprecated ``epoch`` argument and the warnings about
            # calling ``scheduler.step()`` before ``optimizer.step()`` (checked at step 1).
            super().step(epoch)
            # The base class stored copies of the group values; report the draws as floats.
            self._last_lr = self._drawn
            return
        # Fast path, equivalent to the base class's step() for a scheduler without closed form.
        self._step_count += 1
        self.last_epoch += 1
        lrs = self._next_lrs()
        for group, lr in zip(self.optimizer.param_groups, lrs):  # noqa: B905 (same length)
            if type(group["lr"]) is float:  # the hot path: no call for a plain float LR
                group["lr"] = lr
            else:
                set_group_lr(group, lr)
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """Return the learning rates set by the last :meth:`step`, as python floats."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Return the complete state of the scheduler, without the optimizer.

        Keys: ``version`` (2), ``seed``, ``lr_min``, ``lr_max``, ``warmup_steps``,
        ``draw_every``, ``distribution``, ``beta_shape``, ``block_size``, ``block_rng_state``
        (uint8 generator state at the start of the current block of draws), ``block_offset``
        (draws used from that block; the last one used is the draw the LR holds until the next
        draw), ``last_epoch``, ``step_count``, ``last_lr`` and ``base_lrs``. The values are
        ints, floats, a string, lists of floats and one uint8 tensor, so the dict loads with
        ``torch.load(weights_only=True)``.
        """
        return {
            "version": _STATE_VERSION,
            "seed": self._seed,
            "lr_min": list(self._lr_min),
            "lr_max": list(self._lr_max),
            "warmup_steps": self._warmup_steps,
            "draw_every": self._draw_every,
            "distribution": self._distribution,
            "beta_shape": self._beta_shape,
            "block_size": self._block_size,
            "block_rng_state": self._block_state.clone(),
            "block_offset": self._offset,
            "last_epoch": self.last_epoch,
            "step_count": self._step_count,
            "last_lr": list(self._last_lr),
            "base_lrs": [float(lr) for lr in self.base_lrs],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`; the sequence continues bit-identically.

        The saved bounds, seed, warmup, draw frequency and distribution replace those given to
        the constructor. A state of version 1 (saved before the draw frequency and the
        distribution were choices) is the paper's PLRS: a uniform draw at every step. The
        optimizer's LRs are not touched (they are restored with the optimizer's own state).

        Args:
            state_dict: A dict returned by :meth:`state_dict`.

        Raises:
            ValueError: The dict is not a PLRS state of version 1 or 2, or it was saved for
                another number of param groups.
        """
        version = state_dict.get("version") if isinstance(state_dict, dict) else None
        if version not in _READABLE_VERSIONS:
            raise ValueError(
                f"state_dict must be a PLRS state of version {_STATE_VERSION} (or 1) "
                f"but got version {version!r}."
            )
        if version == 1:
            paper = {"draw_every": 1, "distribution": "uniform", "beta_shape": 2.0}
            state_dict = {**state_dict, **paper}
        missing = sorted(set(self.state_dict()) - set(state_dict))
        if missing:
            raise ValueError(f"state_dict is missing the PLRS keys {missing}.")
        n_groups = len(self.optimizer.param_groups)
        saved_groups = len(state_dict["lr_min"])
        if saved_groups != n_groups:
            raise ValueError(
                f"state_dict holds {saved_groups} param groups but the optimizer has {n_groups}."
            )
        lows, highs = _check_bounds(state_dict["lr_min"], state_dict["lr_max"], n_groups)
        block_size = int(state_dict["block_size"])
        offset = int(state_dict["block_offset"])
        if block_size < 1 or not 0 <= offset <= block_size:
            raise ValueError(
                f"state_dict block_offset must be in [0, block_size ({block_size})] "
                f"but got {offset}."
            )
        rng_state = state_dict["block_rng_state"]
        if not isinstance(rng_state, torch.Tensor) or rng_state.dtype != torch.uint8:
            raise ValueError(
                f"state_dict block_rng_state must be a uint8 tensor but got {rng_state!r}."
            )
        draw = _check_draw(
            state_dict["draw_every"],
            state_dict["distribution"],
            state_dict["beta_shape"],
            lows,
            per_group=n_groups > 1,
        )
        self._lr_min, self._lr_max = lows, highs
        self._warmup_steps = _check_warmup(state_dict["warmup_steps"])
        self._draw_every, self._distribution, self._beta_shape = draw
        self._seed = _check_seed(state_dict["seed"])
        self._block_size = block_size
        self._generator.set_state(rng_state.clone())
        self._block_state = rng_state.clone()
        self._block = self._draw_block(block_size)
        self._offset = offset
        self._held = self._block[offset - 1] if offset > 0 else None
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["step_count"])
        self._last_lr = [float(lr) for lr in state_dict["last_lr"]]
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
