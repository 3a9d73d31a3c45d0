"""Learning-rate schedulers: PLRS, the knee schedule and a registry of the compared baselines."""

from __future__ import annotations

from prl_tune.schedulers._knee import KneeLR
from prl_tune.schedulers._lr import set_lr
from prl_tune.schedulers._plrs import PLRS
from prl_tune.schedulers._registry import (
    SCHEDULER_DEFAULTS,
    SCHEDULER_NAMES,
    SCHEDULER_PARAMS,
    SCHEDULERS,
    SchedulerEntry,
    build_scheduler,
)

__all__ = [
    "PLRS",
    "SCHEDULERS",
    "SCHEDULER_DEFAULTS",
    "SCHEDULER_NAMES",
    "SCHEDULER_PARAMS",
    "KneeLR",
    "SchedulerEntry",
    "build_scheduler",
    "set_lr",
]
