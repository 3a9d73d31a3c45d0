"""Stability rules: judge a run's per-step training loss (pure Python, no Optuna or Ray)."""

from __future__ import annotations

from prl_tune.stability._memory import (
    MEMORY_MODES,
    RangeRecord,
    UnstableRangeMemory,
    lr_bounds,
)
from prl_tune.stability._rules import VERDICT_KINDS, StabilityMonitor, StabilityRules, Verdict

__all__ = [
    "MEMORY_MODES",
    "VERDICT_KINDS",
    "RangeRecord",
    "StabilityMonitor",
    "StabilityRules",
    "UnstableRangeMemory",
    "Verdict",
    "lr_bounds",
]
