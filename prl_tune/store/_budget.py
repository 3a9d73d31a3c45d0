"""The lock every worker of a study takes, on any machine, to hand out the trial budget.

A worker decides whether the study needs another trial ("count the trials that use the budget,
enqueue the round-robin scheduler's trial, ask, claim") under this lock, so the study never gets
more than ``n_trials`` trials and no enqueued trial is asked twice, however many commands on
however many machines share the storage. The lock lives where all of them meet:

- **SQLite**: an exclusive ``flock`` on ``<database>.budget-lock`` beside the database file. The
  store's own writes go through Optuna's connections, so the lock cannot be a transaction on the
  database itself (``BEGIN IMMEDIATE`` there would hold the write lock those writes wait for).
  The kernel drops the lock when its process dies; every process that can share a SQLite file
  reaches the lock file the same way.
- **PostgreSQL**: ``pg_advisory_xact_lock(key)`` in a transaction on a connection of its own to
  the same database, ``key`` a 64-bit hash of the study's name. The server drops it when the
  transaction ends, and when the holder's connection closes (its process died); a holder that
  vanished without closing it (a lost machine) loses it after ``LOCK_HOLD_LIMIT_S``
  (``idle_in_transaction_session_timeout``), since the lock's connection idles while its holder
  works through the store's.
- **Any other database** (MySQL, ...): a lock file on this machine, in the temporary folder,
  named after the URL and the study, with a :class:`LocalBudgetWarning`: several commands on
  this machine share the budget exactly, commands on several machines do not (use PostgreSQL).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from prl_tune.store._urls import StorageError, _first_line, redact, storage_backend

#: Seconds a PostgreSQL lock may be held; a live holder needs well under one.
LOCK_HOLD_LIMIT_S = 60
#: The SQLite lock file beside the database.
LOCK_FILE_SUFFIX = ".budget-lock"
_IN_DATABASE = ("sqlite", "postgresql")


class LocalBudgetWarning(UserWarning):
    """The store's database has no budget lock of prl_tune's: the budget is shared by the
    commands of one machine only."""


def budget_lock_backend(url: str) -> str:
    """Where :class:`BudgetLock` keeps the lock for ``url``: ``"sqlite"`` (a file beside the
    database), ``"postgresql"`` (an advisory lock) or ``"local"`` (a file on this machine, for
    any other database).

    Raises:
        StorageError: ``url`` is no storage URL (see ``storage_backend``).
    """
    backend = storage_backend(url)
    return backend if backend in _IN_DATABASE else "local"


def budget_lock_key(study_name: str) -> int:
    """The PostgreSQL advisory-lock key of a study: the same on every machine."""
    digest = hashlib.sha256(f"prl_tune budget {study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class BudgetLock:
    """A lock shared by every process that runs trials of one study on one storage.

    Open one per process (a forked child must open its own), take it with ``with lock:`` as
    often as needed, and :meth:`close` it at the end. Not re-entrant.

    Example:
        >>> lock = BudgetLock("sqlite:///prl_tune.db", "quickstart")  # doctest: +SKIP
        >>> with lock:  # doctest: +SKIP
        ...     if counted_trials(study) < n_trials:
        ...         trial = study.ask()

    Args:
        url: the study's storage URL.
        study_name: the study's name (PostgreSQL locks per study, SQLite per database file).

    Raises:
        StorageError: the URL's backend has no budget lock.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self.url = url
        self.study_name = study_name
        self.backend = budget_lock_backend(url)
        if self.backend == "local":
            warnings.warn(
                f"storage: the trial budget of {redact(url)!r} is shared only by the commands "
                f"on this machine (prl_tune locks it in the database for SQLite and PostgreSQL "
                f"only); for several machines use a postgresql:// store.",
                LocalBudgetWarning,
                stacklevel=2,
            )
        self._file: int | None = None
        self._engine: Any = None
        self._connection: Any = None
        self._transaction: Any = None

    @property
    def path(self) -> Path:
        """The lock file (SQLite: beside the database; another database but PostgreSQL: in
        this machine's temporary folder)."""
        from sqlalchemy.engine import make_url

        if self.backend == "local":
            digest = hashlib.sha256(f"{redact(self.url)}\n{self.study_name}".encode())
            return Path(tempfile.gettempdir()) / f"prl_tune-{digest.hexdigest()[:16]}.budget-lock"
        database = Path(make_url(self.url).database or "").expanduser().resolve()
        return database.with_name(database.name + LOCK_FILE_SUFFIX)

    def __enter__(self) -> BudgetLock:
        if self.backend == "postgresql":
            self._lock_postgres()
        else:
            self._lock_file()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.backend != "postgresql":
            if self._file is not None:
                _unlock_file(self._file)
            return
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        try:
            if kind is None:
                transaction.commit()  # ends the transaction, so the server drops the lock
            else:
                transaction.rollback()
        finally:
            connection.close()

    def _lock_file(self) -> None:
        if self._file is None:
            self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        _lock_file(self._file)

    def _lock_postgres(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        if self._engine is None:
            self._engine = create_engine(
                self.url,
                pool_size=1,
                max_overflow=0,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 10},
            )
        connection = self._engine.connect()
        try:
            transaction = connection.begin()
            limit = f"'{LOCK_HOLD_LIMIT_S}s'"
            connection.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {limit}"))
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": budget_lock_key(self.study_name)},
            )
        except SQLAlchemyError as exc:
            connection.close()
            raise StorageError(
                f"storage: cannot take the budget lock on {redact(self.url)!r}: "
                f"{_first_line(exc, self.url)}"
            ) from None
        except BaseException:
            connection.close()
            raise
        self._connection, self._transaction = connection, transaction

    def close(self) -> None:
        """Release what the lock holds open (its file, its connection pool)."""
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _lock_file(fd: int) -> None:
    """Wait for an exclusive lock on the open file ``fd`` (the holders are brief)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # the lock is on the file's first byte
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined]
                return
            except OSError:  # LK_LOCK gave up after 10 s: wait on
                continue
    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock_file(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)
