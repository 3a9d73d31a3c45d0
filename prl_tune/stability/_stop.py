"""Why a trial was stopped as unstable: one record that every host writes the same way."""

from __future__ import annotations

from dataclasses import dataclass

from prl_tune.stability._memory import RangeRecord
from prl_tune.stability._rules import Verdict


@dataclass(frozen=True)
class StopRecord:
    """Why a trial was stopped as unstable.

    Args:
        pruned_by: ``"rules"`` (the divergence rules fired, on the training loop's steps or on
            the reports) or ``"memory"`` (its range is at least as aggressive as an unstable
            one; it was stopped before it trained).
        reason: one sentence for people.
        kind: the rule that fired (``"non-finite"``, ``"exploded"``, ...), ``None`` for memory.
        step: the step (or report) at which the rule fired, or ``None``.
    """

    pruned_by: str
    reason: str
    kind: str | None = None
    step: int | None = None

    @classmethod
    def by_rules(cls, verdict: Verdict) -> StopRecord:
        """The stop for a verdict of the divergence rules."""
        return cls("rules", verdict.reason, verdict.kind, verdict.step)

    @classmethod
    def by_memory(cls, blocker: RangeRecord) -> StopRecord:
        """The stop for a range that the unstable trial ``blocker`` dominates."""
        return cls(
            "memory",
            f"memory: range at least as aggressive as unstable trial {blocker.trial} "
            f"(lr_min={blocker.lr_min:.4g}, lr_max={blocker.lr_max:.4g})",
        )
