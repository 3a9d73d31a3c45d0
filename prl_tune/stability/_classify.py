"""What a finished trial teaches the memory, judged from what the store keeps of it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prl_tune.stability._rules import StabilityRules

#: The outcomes :func:`classify_run` gives: ``"unstable"`` (a lesson for the memory and an
#: infeasible trial for the sampler), ``"flat"`` (never got below its starting level: dead if a
#: less aggressive range learned, else too slow; the memory decides with the other trials),
#: ``"stable"``.
OUTCOMES = ("unstable", "flat", "stable")


@dataclass(frozen=True)
class RunOutcome:
    """How a finished run ended, for the memory.

    Args:
        outcome: One of :data:`OUTCOMES`.
        kind: For ``"unstable"``: the failure mode (``"collapsed"`` or ``"sustained"``);
            for ``"flat"``: ``"dead"`` (what it is if a gentler range learned); else ``None``.
        reason: One sentence for people (``None`` for a stable run).
    """

    outcome: str
    kind: str | None = None
    reason: str | None = None


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def classify_run(
    history: Sequence[Mapping[str, Any]],
    *,
    initial_loss: float | None,
    peak_loss: float | None,
    chance_loss: float | None,
    rules: StabilityRules,
    learned_at: int | None = None,
) -> RunOutcome:
    """Classify a run that the rules let finish (completed, or stopped by a base pruner) from
    its per-epoch history, as the divergence rules would have judged it in the end.

    Example:
        >>> rules = StabilityRules()
        >>> history = [{"train_loss": 1.2}, {"train_loss": 2.31}, {"train_loss": 2.30}]
        >>> classify_run(history, initial_loss=2.4, peak_loss=2.5, chance_loss=2.3026,
        ...              rules=rules).kind
        'collapsed'

    The reference and the level are the rules' (``max`` and ``min`` of the chance level and
    the first step's loss ``initial_loss``; without a chance level, the first loss):

    - **collapsed** (unstable): the last epoch's mean training loss is within
      ``collapse_tolerance`` of the chance level, after a spike (``peak_loss`` above
      ``spike_factor`` x the reference) or after an epoch well below the chance level
      (``1 - 2 collapse_tolerance`` of it): the run fell back to predicting the prior;
    - **sustained** (unstable): an epoch's mean training loss above ``sustain_factor`` x the
      reference;
    - **flat** (when the dead rule is on): no epoch's mean training loss, nor the running loss
      (``learned_at``), below ``1 - dead_tolerance`` of the level: dead from the start if a
      less aggressive range of the same setup learned, else too slow; never taught as
      unstable on its own.
    - otherwise **stable**.

    Args:
        history: Per-epoch dicts with ``train_loss`` (as the hosts store them).
        initial_loss: The running loss at the first check (the first step's loss).
        peak_loss: The highest running loss seen.
        chance_loss: ``ln C`` for ``C`` classes, or ``None``.
        rules: The thresholds.
        learned_at: The step the running loss first went below the level, if it did.
    """
    losses = _finite([epoch.get("train_loss") for epoch in history])
    if not losses or initial_loss is None or not math.isfinite(initial_loss):
        return RunOutcome("stable")
    chance = chance_loss
    reference = initial_loss if chance is None else max(chance, initial_loss)
    level = initial_loss if chance is None else min(chance, initial_loss)
    if rules.sustain_factor is not None and reference > 0:
        high = [k for k, loss in enumerate(losses, 1) if loss > rules.sustain_factor * reference]
        if high:
            return RunOutcome(
                "unstable",
                "sustained",
                f"sustained: mean training loss of epoch {high[0]} "
                f"{losses[high[0] - 1]:.4g} above {rules.sustain_factor:g} x the reference "
                f"{reference:.4g}",
            )
    if chance is not None and rules.collapse_window is not None:
        band = rules.collapse_tolerance * chance
        spiked = peak_loss is not None and peak_loss > rules.spike_factor * reference
        learned = any(loss < (1 - 2 * rules.collapse_tolerance) * chance for loss in losses)
        if abs(losses[-1] - chance) <= band and (spiked or learned):
            before = "a spike" if spiked else "learning"
            return RunOutcome(
                "unstable",
                "collapsed",
                f"collapsed: ended at the chance level {chance:.4g} (mean training loss "
                f"{losses[-1]:.4g} in the last epoch) after {before}",
            )
    flat = learned_at is None and min(losses) >= (1 - rules.dead_tolerance) * level
    if rules.dead_window is not None and flat:
        return RunOutcome(
            "flat",
            "dead",
            f"flat: mean training loss never below {level:.4g} (the smaller of the chance "
            "level and the first loss)",
        )
    return RunOutcome("stable")
