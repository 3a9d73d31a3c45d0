"""The store: an Optuna storage (SQLite by default) that backends write and reports read."""

from prl_tune.store._storage import (
    HEARTBEAT_GRACE_S,
    HEARTBEAT_INTERVAL_S,
    SQLITE_BUSY_TIMEOUT_S,
    StorageError,
    check_storage_url,
    open_storage,
)

__all__ = [
    "HEARTBEAT_GRACE_S",
    "HEARTBEAT_INTERVAL_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "StorageError",
    "check_storage_url",
    "open_storage",
]
