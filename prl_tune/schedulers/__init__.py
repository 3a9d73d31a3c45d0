"""Learning-rate schedulers: PLRS, the knee schedule and a factory for the compared baselines."""

from __future__ import annotations

from prl_tune.schedulers._factory import (
    SCHEDULER_DEFAULTS,
    SCHEDULER_NAMES,
    SCHEDULER_PARAMS,
    build_scheduler,
)
from prl_tune.schedulers._knee import KneeLR
from prl_tune.schedulers._plrs import PLRS

__all__ = [
    "PLRS",
    "SCHEDULER_DEFAULTS",
    "SCHEDULER_NAMES",
    "SCHEDULER_PARAMS",
    "KneeLR",
    "build_scheduler",
]
