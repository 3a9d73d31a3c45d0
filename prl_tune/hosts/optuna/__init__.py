"""The Optuna host: the runner (worker processes on a shared storage), the objective and the
``InstabilityPruner``."""

from prl_tune.hosts.optuna._objective import optuna_objective
from prl_tune.hosts.optuna._pruner import InstabilityPruner, make_pruner
from prl_tune.hosts.optuna._runner import run_study
from prl_tune.store import make_sampler

__all__ = ["InstabilityPruner", "make_pruner", "make_sampler", "optuna_objective", "run_study"]
