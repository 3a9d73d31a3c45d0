"""Optuna pruners: divergence rules and the unstable-range memory around any base pruner."""

from prl_tune.pruners._instability import (
    CONSTRAINT_KEY,
    InstabilityPruner,
    mark_unstable,
    range_record,
    stability_boundary,
    study_records,
)

__all__ = [
    "CONSTRAINT_KEY",
    "InstabilityPruner",
    "mark_unstable",
    "range_record",
    "stability_boundary",
    "study_records",
]
