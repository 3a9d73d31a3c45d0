"""Search spaces: written once, rendered for Optuna and for Ray Tune."""

from prl_tune.space._pending import PendingRangeTest
from prl_tune.space._plrs_space import PLRSSpace
from prl_tune.space._scheduler_space import ALL_SCHEDULERS, SchedulerSpace

__all__ = ["ALL_SCHEDULERS", "PLRSSpace", "PendingRangeTest", "SchedulerSpace"]
