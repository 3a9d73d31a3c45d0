"""Stability rules: judge a run's per-step training loss (pure Python, no Optuna or Ray)."""

from __future__ import annotations

from prl_tune.stability._classify import OUTCOMES, RunOutcome, classify_run
from prl_tune.stability._memory import (
    EVIDENCE_KEY,
    LR_PARAM_SUFFIXES,
    MEMORY_MODES,
    RangeRecord,
    UnstableRangeMemory,
    describe_boundary,
    lr_bounds,
    range_context,
)
from prl_tune.stability._rules import (
    OPTIONAL_RULES,
    VERDICT_KINDS,
    StabilityMonitor,
    StabilityRules,
    Verdict,
)
from prl_tune.stability._stop import StopRecord

__all__ = [
    "EVIDENCE_KEY",
    "LR_PARAM_SUFFIXES",
    "MEMORY_MODES",
    "OPTIONAL_RULES",
    "OUTCOMES",
    "VERDICT_KINDS",
    "RangeRecord",
    "RunOutcome",
    "StabilityMonitor",
    "StabilityRules",
    "StopRecord",
    "UnstableRangeMemory",
    "Verdict",
    "classify_run",
    "describe_boundary",
    "lr_bounds",
    "range_context",
]
