"""The Optuna host: the runner (worker processes on a shared storage, watched by a supervisor),
the objective and the ``InstabilityPruner``."""

from prl_tune.hosts.optuna._gpus import assign_gpus, visible_gpus
from prl_tune.hosts.optuna._objective import optuna_objective
from prl_tune.hosts.optuna._pruner import InstabilityPruner, make_pruner
from prl_tune.hosts.optuna._runner import run_study
from prl_tune.hosts.optuna._supervisor import WorkersFailed
from prl_tune.store import make_sampler

__all__ = [
    "InstabilityPruner",
    "WorkersFailed",
    "assign_gpus",
    "make_pruner",
    "make_sampler",
    "optuna_objective",
    "run_study",
    "visible_gpus",
]
