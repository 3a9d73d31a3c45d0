"""The Ray Tune host: ``run_study_ray`` (a study file on a Ray cluster), ``InstabilityScheduler``
(the rules and the memory as a ``TrialScheduler``), ``StudySearcher`` (trials proposed by, and
recorded truthfully in, an Optuna study) and ``study_trainable`` (one checkpointed trial).

Importing it needs Ray (the ``ray`` extra); a missing Ray is an ``ImportError`` that says so.
"""

from prl_tune._imports import import_optional

import_optional("ray.tune", "ray")

from prl_tune.hosts.ray._runner import run_study_ray  # noqa: E402
from prl_tune.hosts.ray._scheduler import UNSTABLE_KEY, InstabilityScheduler  # noqa: E402
from prl_tune.hosts.ray._searcher import StudySearcher  # noqa: E402
from prl_tune.hosts.ray._trainable import study_trainable  # noqa: E402
from prl_tune.stability import StopRecord  # noqa: E402

__all__ = [
    "UNSTABLE_KEY",
    "InstabilityScheduler",
    "StopRecord",
    "StudySearcher",
    "run_study_ray",
    "study_trainable",
]
