"""An equal-budget comparison of schedulers (``prl-tune compare``): one tuning study per
scheduler, its best configuration re-trained with fresh seeds on a test split, and the table.

It sits above the hosts and the report layer (it runs studies with the Optuna host and renders
with the report's helpers) and below the CLI; no lower layer imports it.
"""

from prl_tune.compare._evaluation import (
    ENVIRONMENT_ATTR,
    TEST_METRICS,
    environment,
    evaluate_schedulers,
)
from prl_tune.compare._plan import TEST_FRACTION, ComparisonPlan, plan_comparison
from prl_tune.compare._render import comparison_markdown, format_comparison
from prl_tune.compare._run import run_comparison, stored_table
from prl_tune.compare._table import (
    CONFIDENCE,
    TABLE_ATTR,
    ComparisonTable,
    SchedulerResult,
    build_table,
    welch_interval,
)
from prl_tune.compare._tuning import best_trial, tune_schedulers

__all__ = [
    "CONFIDENCE",
    "ENVIRONMENT_ATTR",
    "TABLE_ATTR",
    "TEST_FRACTION",
    "TEST_METRICS",
    "ComparisonPlan",
    "ComparisonTable",
    "SchedulerResult",
    "best_trial",
    "build_table",
    "comparison_markdown",
    "environment",
    "evaluate_schedulers",
    "format_comparison",
    "plan_comparison",
    "run_comparison",
    "stored_table",
    "tune_schedulers",
    "welch_interval",
]
