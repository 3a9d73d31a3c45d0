"""The store: an Optuna storage (SQLite by default) that both hosts write and reports read."""

from prl_tune.store._study import (
    RANGE_TEST_ATTR,
    SPEC_ATTR,
    VERSION_ATTR,
    counted_trials,
    create_or_resume,
    record_range_test,
    resolve_lr_max,
    stored_range_test,
)
from prl_tune.store._trials import (
    CONSTRAINT_KEY,
    VERDICT_PREFIX,
    json_float,
    mark_unstable,
    range_record,
    record_verdict,
    stability_boundary,
    stop_attrs,
    study_records,
    trial_attrs,
)
from prl_tune.store._urls import (
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    SQLITE_BUSY_TIMEOUT_S,
    StorageError,
    check_storage_url,
    open_storage,
)

__all__ = [
    "CONSTRAINT_KEY",
    "HEARTBEAT_GRACE_S",
    "HEARTBEAT_INTERVAL_S",
    "RANGE_TEST_ATTR",
    "SPEC_ATTR",
    "SQLITE_BUSY_TIMEOUT_S",
    "VERDICT_PREFIX",
    "VERSION_ATTR",
    "StorageError",
    "check_storage_url",
    "counted_trials",
    "create_or_resume",
    "json_float",
    "mark_unstable",
    "open_storage",
    "range_record",
    "record_range_test",
    "record_verdict",
    "resolve_lr_max",
    "stability_boundary",
    "stop_attrs",
    "stored_range_test",
    "study_records",
    "trial_attrs",
]
