"""Storage URLs: an Optuna ``RDBStorage`` on SQLite by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import optuna

from prl_tune.config import SpecError

#: Seconds a SQLite connection waits for another writer's lock before failing; long, so that on a
#: slow disk or network filesystem a worker waits out a held lock instead of losing its trial.
SQLITE_BUSY_TIMEOUT_S = 60.0

#: Heartbeat of a running trial: a trial whose process died (killed, machine lost) is marked FAIL
#: by the next run after ``HEARTBEAT_GRACE_S`` without a beat, so a resumed study re-runs it.
HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 60


class StorageError(SpecError):
    """A storage URL that cannot be used: malformed, unreachable, or a missing folder."""


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def open_for_reading(url: str) -> optuna.storages.RDBStorage:
    """Open an existing Optuna storage without creating or changing anything in it.

    Raises:
        StorageError: the URL is malformed, the SQLite file is missing or is not SQLite, the
            database holds no Optuna tables, or its schema is from another Optuna version.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    check_storage_url(url)
    shown = redact(url)
    parsed = make_url(url)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        if not path.is_file():
            raise StorageError(f"storage: no SQLite file at {str(path)!r} (from {shown!r}).")
        with path.open("rb") as file:
            if file.read(16) != b"SQLite format 3\x00":
                raise StorageError(f"storage: {str(path)!r} is not an SQLite database.")
        if "studies" not in _sqlite_tables(path):
            raise StorageError(f"storage: {str(path)!r} holds no Optuna study tables.")
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, skip_table_creation=True
            )
    except RuntimeError as exc:  # Optuna: the schema is from another version
        raise StorageError(f"storage: {shown!r}: {_first_line(exc)}") from None
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise StorageError(
            f"storage: {shown!r} holds no Optuna study tables ({_first_line(exc)})."
        ) from None


def _sqlite_tables(path: Path) -> set[str]:
    """The tables of a SQLite file, read through a read-only connection."""
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(row[0]) for row in rows}
    finally:
        connection.close()


def check_storage_url(url: str) -> None:
    """Check that ``url`` can be opened, without creating anything; raise ``StorageError``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"storage: must be a SQLAlchemy URL like {_EXAMPLE} but got {redact(url)!r}."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"storage: a SQLite store must name a file (an in-memory one is lost at exit and "
                f"unseen by worker processes) but got {redact(url)!r}."
            )
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StorageError(
                f"storage: folder {str(folder)!r} does not exist; got {redact(url)!r}."
            )
        return
    try:
        engine = create_engine(url, connect_args=_connect_timeout(parsed.get_backend_name()))
    except ImportError as exc:
        raise StorageError(
            f"storage: cannot use {redact(url)!r}: its database driver is missing ({exc}); for "
            f"PostgreSQL: pip install 'prl_tune[postgres]'."
        ) from exc
    except (ArgumentError, SQLAlchemyError) as exc:
        raise StorageError(f"storage: cannot use {redact(url)!r}: {_first_line(exc)}") from exc
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StorageError(
            f"storage: cannot connect to {redact(url)!r}: {_first_line(exc)}"
        ) from exc
    finally:
        engine.dispose()


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Open (and create if needed) the Optuna storage at ``url``.

    SQLite files are switched to WAL journaling (readers never block the writer, and the
    setting stays with the file) with ``synchronous=NORMAL`` and get a long busy timeout so
    several worker processes can share one file; a running trial records heartbeats so a crashed
    worker's trial is failed and re-run on resume.
    """
    check_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _enable_wal(Path(parsed.database or "").expanduser())
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=HEARTBEAT_GRACE_S,
        )
    if parsed.get_backend_name() == "sqlite":
        # In WAL mode, NORMAL syncs at checkpoints instead of at every commit: a crashed
        # process loses nothing, an OS crash or power cut at most the last commits (which a
        # resumed study re-runs); the file is never corrupted. Each write takes half the time.
        from sqlalchemy import event

        event.listen(storage.engine, "connect", _sync_normal)
        storage.engine.dispose()  # the connections made so far predate the listener
    return storage


def _sync_normal(connection: Any, record: Any) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


def _enable_wal(path: Path) -> None:
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _connect_timeout(backend: str) -> dict[str, Any]:
    if backend in ("postgresql", "mysql"):
        return {"connect_timeout": 10}
    return {}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_EXAMPLE = "'sqlite:///prl_tune.db' or 'postgresql://user@host/db'"
