"""Learning-rate schedulers: PLRS, the knee schedule and a registry of the compared baselines."""

from __future__ import annotations

from prl_tune.schedulers._knee import KneeLR
from prl_tune.schedulers._lr import set_lr
from prl_tune.schedulers._plrs import DISTRIBUTIONS, PLRS
from prl_tune.schedulers._registry import (
    DRAW_EVERY_WORDS,
    PLRS_VARIANTS,
    SCHEDULER_DEFAULTS,
    SCHEDULER_NAMES,
    SCHEDULER_PARAMS,
    SCHEDULERS,
    SchedulerEntry,
    build_scheduler,
    check_draw_every,
)

__all__ = [
    "DISTRIBUTIONS",
    "DRAW_EVERY_WORDS",
    "PLRS",
    "PLRS_VARIANTS",
    "SCHEDULERS",
    "SCHEDULER_DEFAULTS",
    "SCHEDULER_NAMES",
    "SCHEDULER_PARAMS",
    "KneeLR",
    "SchedulerEntry",
    "build_scheduler",
    "check_draw_every",
    "set_lr",
]
