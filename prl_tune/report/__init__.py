"""Reports from the store (Optuna's public API only, whichever backend wrote it): progress lines,
the text summary, and the full report as text, Markdown or one self-contained HTML page."""

from prl_tune.report._comparison import (
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
from prl_tune.report._model import OUTCOMES, StudyReport, TrialView, build_report
from prl_tune.report._render import (
    FORMATS,
    format_for,
    note_markdown,
    to_html,
    to_markdown,
    to_text,
    write_report,
)
from prl_tune.report._summary import Progress, format_range_test, format_summary
from prl_tune.report._text import fmt, format_table

__all__ = [
    "CONFIDENCE",
    "FORMATS",
    "OUTCOMES",
    "TABLE_ATTR",
    "TEST_METRICS",
    "ComparisonTable",
    "Progress",
    "SchedulerResult",
    "StudyReport",
    "TrialView",
    "build_report",
    "comparison_html",
    "comparison_markdown",
    "fmt",
    "format_comparison",
    "format_for",
    "format_range_test",
    "format_summary",
    "format_table",
    "note_markdown",
    "stored_table",
    "to_html",
    "to_markdown",
    "to_text",
    "write_report",
]
