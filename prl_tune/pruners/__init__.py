"""Host adapters of the divergence rules and the unstable-range memory.

``InstabilityPruner`` is an Optuna pruner; ``InstabilityScheduler`` a Ray Tune trial scheduler
(imported on first use, so Optuna users need no Ray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prl_tune.pruners._instability import (
    CONSTRAINT_KEY,
    InstabilityPruner,
    mark_unstable,
    range_record,
    stability_boundary,
    study_records,
)

if TYPE_CHECKING:
    from prl_tune.pruners._ray_scheduler import UNSTABLE_KEY, InstabilityScheduler, StopRecord

_RAY_NAMES = ("InstabilityScheduler", "StopRecord", "UNSTABLE_KEY")

__all__ = [
    "CONSTRAINT_KEY",
    "UNSTABLE_KEY",
    "InstabilityPruner",
    "InstabilityScheduler",
    "StopRecord",
    "mark_unstable",
    "range_record",
    "stability_boundary",
    "study_records",
]


def __getattr__(name: str) -> Any:
    if name in _RAY_NAMES:
        from prl_tune._imports import import_optional

        module = import_optional("prl_tune.pruners._ray_scheduler", "ray")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
