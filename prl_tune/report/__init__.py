"""Reports from the store: progress lines and summary tables (Optuna's public API only)."""

from prl_tune.report._summary import Progress, format_range_test, format_summary, format_table

__all__ = ["Progress", "format_range_test", "format_summary", "format_table"]
