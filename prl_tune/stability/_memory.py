"""A memory of unstable LR ranges across trials (pure Python; hosts feed it their records)."""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prl_tune._checks import choice

MEMORY_MODES = ("dominance", "lr_max", "off")

#: Parameter names that encode an LR range (with any prefix, e.g. ``plrs_lr_max``, ``cosine_lr``):
#: they are compared by the memory, so they are no part of a trial's context.
LR_PARAM_SUFFIXES = ("lr_max", "lr_min_ratio", "lr_min_frac", "lr_min", "lr")
#: A config key a host may add to a trial's config to hand it the dead rule's evidence
#: (``known_to_learn``); it is no searched value, so no part of a trial's context.
EVIDENCE_KEY = "prl_tune_known_to_learn"


def _freeze(value: Any) -> Hashable:
    """A hashable, order-independent stand-in for a parameter value (nested dicts, lists)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def range_context(
    scheduler: str, params: Mapping[str, Any], *, lr_params: Collection[str] = ()
) -> Hashable:
    """What must be equal for two trials' LR ranges to be compared: the one definition.

    The context is the scheduler's name and every other searched value: ``params`` without the
    ``scheduler`` choice and without the LR parameters (``lr_params``, and any name ending in
    one of :data:`LR_PARAM_SUFFIXES`), as a sorted tuple of ``(name, value)`` pairs.
    """
    items: list[tuple[str, Hashable]] = [("scheduler", scheduler)]
    for name, value in sorted(params.items()):
        if name in ("scheduler", EVIDENCE_KEY) or name in lr_params:
            continue
        if name.endswith(LR_PARAM_SUFFIXES):
            continue
        items.append((str(name), _freeze(value)))
    return tuple(items)


def lr_bounds(params: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(lr_min, lr_max)`` from ``lr_min``/``lr_max``, or ``(lr, lr)`` for a peak-LR schedule.

    ``None`` when ``params`` holds neither or a bound is not finite.
    """
    if "lr_max" in params and "lr_min" in params:
        low, high = float(params["lr_min"]), float(params["lr_max"])
    elif "lr" in params:
        low = high = float(params["lr"])
    else:
        return None
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


@dataclass(frozen=True)
class RangeRecord:
    """One finished trial's LR range and whether it was unstable.

    Args:
        lr_min: lower LR bound (for a schedule with one peak LR: that LR).
        lr_max: upper LR bound (or the peak LR).
        unstable: whether the trial diverged, exploded or collapsed.
        context: everything else that was searched (scheduler, optimizer settings, ...); only
            records with an equal context are compared.
        trial: the trial's number, for messages.
        learned_at: the step from which its training loss was below its level (see
            ``StabilityMonitor.learned_at``), ``None`` if it never was or is unknown.
        flat: it finished without ever getting below its level (see
            :func:`~prl_tune.stability.classify_run`): dead from the start when a less
            aggressive range of the same context learned, else too slow.
    """

    lr_min: float
    lr_max: float
    unstable: bool
    context: Hashable = ()
    trial: int | None = None
    learned_at: int | None = None
    flat: bool = False


def _gentler(record: RangeRecord, lr_min: float, lr_max: float) -> bool:
    """Whether ``record``'s range is less aggressive than ``[lr_min, lr_max]``: no bound
    larger, and not the same range."""
    return (
        record.lr_max <= lr_max
        and record.lr_min <= lr_min
        and (record.lr_max, record.lr_min) != (lr_max, lr_min)
    )


class UnstableRangeMemory:
    """Which new LR ranges are at least as aggressive as one already seen to be unstable.

    Mode ``"dominance"`` (the default) blocks a range ``[a, b]`` when an unstable range
    ``[a', b']`` with the same context has ``a >= a'`` and ``b >= b'``: every draw of the new
    range is stochastically larger than one of the unstable range. Mode ``"lr_max"`` blocks on
    ``b >= b'`` alone (the paper's stability condition ``lr_max < 1/beta`` only involves
    ``lr_max``) — more aggressive, so it saves more and risks more. ``"off"`` blocks nothing.

    A stable record never blocks anything, and a stable trial seen *above* an unstable one (a
    noisy boundary) makes the memory stop blocking ranges up to that stable one: a range is
    only blocked when no stable range with the same context dominates it too. A *flat* record
    (a run that never learned) counts as unstable once a less aggressive range of its context
    learned (it was dead, not slow); until then it is too slow and teaches nothing.

    Example:
        >>> memory = UnstableRangeMemory()
        >>> memory.add(RangeRecord(lr_min=1.4, lr_max=2.0, unstable=True, trial=3))
        >>> memory.blocker(1.5, 2.5).trial
        3
        >>> memory.blocker(0.1, 2.5) is None
        True
    """

    def __init__(self, mode: str = "dominance", records: Iterable[RangeRecord] = ()) -> None:
        self.mode = choice("mode", mode, MEMORY_MODES)
        self.records: list[RangeRecord] = list(records)

    def add(self, record: RangeRecord) -> None:
        """Remember one finished trial."""
        self.records.append(record)

    def is_unstable(self, record: RangeRecord) -> bool:
        """Whether ``record`` counts as unstable: marked so, or flat while a less aggressive
        range of its context learned."""
        if record.unstable:
            return True
        if not record.flat:
            return False
        return any(
            r.learned_at is not None
            and not r.unstable
            and r.context == record.context
            and _gentler(r, record.lr_min, record.lr_max)
            for r in self.records
        )

    def is_slow(self, record: RangeRecord) -> bool:
        """Whether ``record`` is a flat run that no gentler learning range makes unstable."""
        return record.flat and not self.is_unstable(record)

    def known_to_learn(
        self, lr_min: float, lr_max: float, context: Hashable = (), within: int | None = None
    ) -> bool:
        """Whether a less aggressive range than ``[lr_min, lr_max]`` with this context learned
        (within ``within`` steps when given) and was not unstable: the evidence that lets the
        ``"dead"`` rule tell a dead run from a slow one."""
        return any(
            r.learned_at is not None
            and (within is None or r.learned_at <= within)
            and not r.unstable
            and r.context == context
            and _gentler(r, lr_min, lr_max)
            for r in self.records
        )

    def _dominates(self, lr_min: float, lr_max: float, record: RangeRecord) -> bool:
        if self.mode == "lr_max":
            return lr_max >= record.lr_max
        return lr_min >= record.lr_min and lr_max >= record.lr_max

    def blocker(self, lr_min: float, lr_max: float, context: Hashable = ()) -> RangeRecord | None:
        """The unstable record that makes ``[lr_min, lr_max]`` too aggressive, or ``None``."""
        if self.mode == "off":
            return None
        same = [r for r in self.records if r.context == context]
        unstable = [r for r in same if self.is_unstable(r)]
        stable = [r for r in same if not self.is_unstable(r) and not r.flat]
        for record in sorted(unstable, key=lambda r: r.lr_max):
            if not self._dominates(lr_min, lr_max, record):
                continue
            # A stable range that is itself at least as aggressive as this one contradicts
            # the memory here: trust the observation and do not block.
            if any(r.lr_max >= lr_max and r.lr_min >= lr_min for r in stable):
                return None
            return record
        return None

    def boundary(self, context: Hashable = ()) -> tuple[float | None, float | None]:
        """``(largest stable lr_max, smallest unstable lr_max)`` seen for ``context``; too-slow
        runs count as stable (they are no instability), dead ones as unstable."""
        same = [r for r in self.records if r.context == context]
        stable = [r.lr_max for r in same if not self.is_unstable(r)]
        unstable = [r.lr_max for r in same if self.is_unstable(r)]
        return (max(stable) if stable else None, min(unstable) if unstable else None)


def describe_boundary(
    context: Hashable, stable: float | None, unstable: float | None
) -> str | None:
    """One line on what the memory learned for ``context``: the ``lr_max`` boundary, or an
    overlap when a stable range reaches above an unstable one (then ``lr_min`` or chance, not
    ``lr_max`` alone, decided, and no single ``lr_max`` separates them). ``None`` while no
    range of the context proved unstable."""
    if unstable is None:
        return None
    pairs = context if isinstance(context, tuple) else ()
    label = ", ".join(f"{k}={v}" for k, v in pairs) if pairs else "all trials"
    if stable is not None and stable >= unstable:
        return (
            f"stability overlap ({label}): stable up to lr_max {stable:.4g}, unstable from "
            f"lr_max {unstable:.4g}; between {unstable:.4g} and {stable:.4g} both were seen "
            "(seeds, lr_min and momentum make instability a matter of chance there)"
        )
    below = "-" if stable is None else f"{stable:.4g}"
    return (
        f"stability boundary ({label}): stable up to lr_max {below}, unstable from lr_max "
        f"{unstable:.4g}"
    )
