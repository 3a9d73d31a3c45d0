"""An equal-budget comparison of schedulers (``prl-tune compare``): one tuning study per
scheduler, its best configuration re-trained with fresh seeds on a test split, and the table.

It sits above the hosts and the report layer (it runs studies with the Optuna host; the table's
data model and its text, Markdown and HTML forms live in :mod:`prl_tune.report`, which reports
render from the store, and are re-exported here) and below the CLI; no lower layer imports it.
"""

from prl_tune.compare._evaluation import ENVIRONMENT_ATTR, environment, evaluate_schedulers
from prl_tune.compare._plan import (
    TEST_FRACTION,
    TRIAL_CAP_FACTOR,
    ComparisonPlan,
    plan_comparison,
)
from prl_tune.compare._run import run_comparison
from prl_tune.compare._table import build_table, welch_interval
from prl_tune.compare._tuning import best_trial, tune_schedulers
from prl_tune.report import (
    CONFIDENCE,
    TABLE_ATTR,
    TEST_METRICS,
    ComparisonTable,
    SchedulerResult,
    comparison_html,
    comparison_markdown,
    format_comparison,
    stored_table,
)

__all__ = [
    "CONFIDENCE",
    "ENVIRONMENT_ATTR",
    "TABLE_ATTR",
    "TEST_FRACTION",
    "TEST_METRICS",
    "TRIAL_CAP_FACTOR",
    "ComparisonPlan",
    "ComparisonTable",
    "SchedulerResult",
    "best_trial",
    "build_table",
    "comparison_html",
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
