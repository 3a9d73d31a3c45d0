"""Storage URLs: an Optuna ``RDBStorage`` on SQLite by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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


class NetworkFilesystemWarning(UserWarning):
    """A SQLite store on a network filesystem, where its locks and WAL are not safe."""


#: Query keys whose values are secrets (libpq's ``password``/``sslpassword``, and the like).
_SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "secret", "token"})
_USERINFO = re.compile(r"(?P<head>://[^:/?#@]*):[^@]*@")
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&;](?:" + "|".join(sorted(_SECRET_KEYS)) + r")=)[^&;#]*", re.IGNORECASE
)


def redact(url: str) -> str:
    """``url`` with its secrets replaced by ``***``: the password, and the values of
    password-like query keys (``?password=``). The one helper behind every message, stored
    attribute and report that shows a storage URL; a URL that does not parse is redacted all
    the same.

        >>> redact("postgresql://tuner:s3cret@db.lab:5432/studies?sslpassword=k3y")
        'postgresql://tuner:***@db.lab:5432/studies?sslpassword=***'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        query = {
            key: "***" if key.lower() in _SECRET_KEYS else value
            for key, value in parsed.query.items()
        }
        shown = parsed.set(query=query).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):  # e.g. a port that is not a number
        shown = url
    return _scrub(shown)


def _scrub(text: str) -> str:
    """``text`` with every password-shaped part (``://user:secret@``, ``?password=secret``)
    replaced by ``***``, whatever a URL parser would make of it."""
    return _SECRET_QUERY.sub(r"\g<head>***", _USERINFO.sub(r"\g<head>:***@", text))


def _without_secrets(text: str, url: str) -> str:
    """``text`` (a driver's message) with ``url``'s password, in any spelling, and any URL
    password in it replaced by ``***``."""
    from urllib.parse import quote, unquote

    secrets: set[str] = set()
    match = re.search(r"://[^:/?#@]*:(?P<password>[^@]*)@", url)
    if match:
        secrets |= {match["password"], unquote(match["password"])}
    for key, value in re.findall(r"[?&;](\w+)=([^&;#]*)", url):
        if key.lower() in _SECRET_KEYS:
            secrets |= {value, unquote(value)}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for spelling in (secret, quote(secret, safe="")):
            text = text.replace(spelling, "***")
    return _scrub(text)


def open_for_reading(url: str) -> optuna.storages.RDBStorage:
    """Open an existing Optuna storage without creating or changing anything in it.

    Raises:
        StorageError: the URL is malformed or unusable (see :func:`check_storage_url`), the
            SQLite file is missing or is not SQLite, the database holds no Optuna tables, or its
            schema is from another Optuna version.
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
    elif not _server_has_tables(url):
        raise StorageError(
            f"storage: must hold Optuna study tables (written by prl-tune tune) but "
            f"{shown!r} holds none."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, skip_table_creation=True
            )
    except RuntimeError as exc:  # Optuna: the schema is from another version
        raise StorageError(f"storage: {shown!r}: {_first_line(exc, url)}") from None
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise StorageError(
            f"storage: {shown!r} holds no Optuna study tables ({_first_line(exc, url)})."
        ) from None


def _sqlite_tables(path: Path) -> set[str]:
    """The tables of a SQLite file, read through a read-only connection."""
    connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(row[0]) for row in rows}
    finally:
        connection.close()


def _server_has_tables(url: str) -> bool:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url, connect_args=_connect_timeout(url))
    try:
        return bool(inspect(engine).has_table("studies"))
    finally:
        engine.dispose()


def storage_backend(url: str) -> str:
    """The backend ``url`` names (``"sqlite"``, ``"postgresql"``, ...), without connecting.

    Raises:
        StorageError: ``url`` is not a SQLAlchemy URL, or is ``grpc://`` (see
            ``_GRPC_REFUSED``).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(
            f"storage: must be a SQLAlchemy URL like {_EXAMPLE} but got {redact(url)!r} "
            f"({_first_line(exc, url)})."
        ) from None
    if parsed.drivername.split("+")[0] == "grpc":
        raise StorageError(_GRPC_REFUSED.format(shown=redact(url)))
    return str(parsed.get_backend_name())


def check_storage_url(url: str) -> None:
    """Check that ``url`` can be opened, without creating anything; raise ``StorageError``.

    A database server is connected to once, so that an unreachable server, wrong credentials,
    a missing database or a missing driver are told apart, each in one line that names the
    rule and shows the URL without its password (:func:`redact`).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    shown = redact(url)
    if storage_backend(url) == "sqlite":
        parsed = make_url(url)
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"storage: a SQLite store must name a file (an in-memory one is lost at exit and "
                f"unseen by worker processes) but got {shown!r}."
            )
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StorageError(f"storage: folder {str(folder)!r} does not exist; got {shown!r}.")
        return
    try:
        engine = create_engine(url, connect_args=_connect_timeout(url))
    except ImportError as exc:
        raise StorageError(_missing_driver(url, exc)) from None
    except (ArgumentError, SQLAlchemyError, ValueError) as exc:
        raise StorageError(
            f"storage: must be a URL SQLAlchemy can open but got {shown!r} "
            f"({_first_line(exc, url)})."
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StorageError(_connect_error(url, exc)) from None
    finally:
        engine.dispose()


#: Why ``grpc://`` (Optuna's ``GrpcStorageProxy``) is refused, and what to use instead.
_GRPC_REFUSED = (
    "storage: grpc:// (Optuna's GrpcStorageProxy) cannot hold a prl_tune study but got "
    "{shown!r}: the proxy records no trial heartbeats, so a killed worker's trial would stay "
    "RUNNING, and it offers no database lock to hold the trial budget across machines; point "
    "every machine at the database server itself (postgresql://user@host/db)."
)

#: What to install when a driver module is missing (else ``pip install <module>``).
_DRIVER_INSTALL = {
    "psycopg": "pip install 'prl_tune[postgres]'",
    "psycopg2": "pip install 'prl_tune[postgres]'",
    "MySQLdb": "pip install mysqlclient",
}


def _missing_driver(url: str, exc: ImportError) -> str:
    """The message for a driver that is not installed, or installed but failing to load."""
    shown = redact(url)
    module = (exc.name or "").split(".")[0]
    if module and importlib.util.find_spec(module) is None:
        install = _DRIVER_INSTALL.get(module, f"pip install {module}")
        if module not in _DRIVER_INSTALL and url.startswith("postgresql+"):
            install += " (or write postgresql://, whose driver 'prl_tune[postgres]' installs)"
        return (
            f"storage: the database driver of {shown!r} must be installed but module "
            f"{module!r} is missing; install it with: {install}."
        )
    return (
        f"storage: the database driver of {shown!r} must load but it fails to "
        f"({_first_line(exc, url)})."
    )


#: A refused connection's cause, from the driver's message (PostgreSQL's and MySQL's words),
#: and the rule it breaks.
_CONNECT_FAULTS = (
    (
        re.compile(
            r"authentication failed|no password supplied|access denied for user|"
            r"role \S+ does not exist",
            re.I,
        ),
        "the server must accept the URL's user and password",
    ),
    (
        re.compile(r"database \S+ does not exist|unknown database", re.I),
        "the database must exist on the server (create it first: createdb -O {user} {db})",
    ),
    (
        re.compile(
            r"connection refused|could not translate host name|name or service not "
            r"known|timeout expired|timed out|no route to host|network is unreachable|"
            r"can't connect",
            re.I,
        ),
        "the database server must be reachable",
    ),
)


def _connect_error(url: str, exc: BaseException) -> str:
    """One line for a connection the server refused: the rule, the redacted URL, the cause."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    detail = _first_line(exc, url)
    # psycopg: 'connection failed: connection to server at "h", port 5 failed: FATAL:  cause'
    cause = re.sub(r"^(FATAL|ERROR):\s+", "", detail.rsplit("failed: ", 1)[-1]).strip()
    cause = re.sub(r"\s+", " ", cause)
    for pattern, rule in _CONNECT_FAULTS:
        if pattern.search(detail):
            rule = rule.format(user=parsed.username or "USER", db=parsed.database or "NAME")
            return f"storage: {rule} but got {redact(url)!r} ({cause})."
    return f"storage: cannot connect to {redact(url)!r}: {detail}"


#: Seconds a process waits for :func:`setup_lock`; its holder needs well under one.
SETUP_LOCK_TIMEOUT_S = 60
#: The advisory-lock key of :func:`setup_lock` (a fixed 64-bit number; other prl_tune locks use
#: other keys).
SETUP_LOCK_KEY = 0x70726C5F747501  # "prl_tu" + 1


@contextmanager
def setup_lock(url: str) -> Iterator[None]:
    """Hold, on a PostgreSQL server, a lock that one process at a time takes to create the
    Optuna tables or a study, so machines started at once do not collide; elsewhere nothing.

    A session-level advisory lock (``pg_advisory_lock``) on a connection of its own: the server
    frees it when that connection ends, also when its process is killed.

    Raises:
        StorageError: the lock was not free within ``SETUP_LOCK_TIMEOUT_S``.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, connect_args=_connect_timeout(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            try:
                connection.execute(text(f"SET lock_timeout = '{SETUP_LOCK_TIMEOUT_S}s'"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK_KEY})
                connection.commit()
            except SQLAlchemyError as exc:
                raise StorageError(
                    f"storage: the set-up lock on {redact(url)!r} must come free within "
                    f"{SETUP_LOCK_TIMEOUT_S} s but did not ({_first_line(exc, url)})."
                ) from None
            try:
                yield
            finally:
                try:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK_KEY}
                    )
                    connection.commit()
                except SQLAlchemyError:
                    pass  # a lost connection: the server has freed the lock with it
    finally:
        engine.dispose()


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Open (and create if needed) the Optuna storage at ``url``.

    SQLite files are switched to WAL journaling (readers never block the writer, and the
    setting stays with the file) with ``synchronous=NORMAL`` and get a long busy timeout so
    several worker processes can share one file; a file on a network filesystem gets a
    :class:`NetworkFilesystemWarning`. A running trial records heartbeats so a crashed worker's
    trial is failed and re-run on resume. On PostgreSQL, the tables are created under
    :func:`setup_lock`, so that machines started at once on a new database do not collide.
    """
    from sqlalchemy.engine import make_url

    check_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        _warn_if_on_network_filesystem(path)
        _enable_wal(path)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with setup_lock(url), warnings.catch_warnings():
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


#: Filesystem types (``/proc/self/mounts``) that reach another machine's disk: SQLite's locks
#: and the shared memory of its WAL are not safe on them.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "gpfs",
        "afs", "ncpfs", "beegfs", "orangefs", "pvfs2", "davfs", "fuse.sshfs", "fuse.glusterfs",
        "fuse.ceph", "fuse.cephfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs",
        "fuse.davfs2",
    }
)  # fmt: skip
_MOUNTS = Path("/proc/self/mounts")
_warned: set[Path] = set()


def network_filesystem(path: Path, mounts: str) -> tuple[str, str] | None:
    r"""The network filesystem ``path`` lies on, as ``(type, mount point)``, or ``None``.

    Args:
        path: an absolute, resolved path (the file itself need not exist).
        mounts: a mount table in the format of ``/proc/self/mounts`` (``device mountpoint type
            options dump pass`` per line, spaces in names written ``\040``); the last mount
            at the longest matching mount point wins, as the kernel stacks them.
    """
    best: tuple[int, str, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = path.as_posix() == point or path.is_relative_to(point)
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fields[2], point)
    if best is None or best[1] not in NETWORK_FILESYSTEMS:
        return None
    return best[1], best[2]


def _unescape_mount(field: str) -> str:
    r"""A mount table field with its octal escapes (``\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _warn_if_on_network_filesystem(path: Path) -> None:
    """Warn (once per file and process) when a SQLite file lies on a network filesystem."""
    resolved = path.resolve()
    if resolved in _warned:
        return
    try:
        mounts = _MOUNTS.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        return
    found = network_filesystem(resolved, mounts)
    if found is None:
        return
    _warned.add(resolved)
    kind, point = found
    warnings.warn(
        f"storage: SQLite file {str(resolved)!r} is on a network filesystem ({kind} at "
        f"{point!r}): SQLite's WAL needs shared memory on one host, so processes on other "
        f"machines can corrupt it or read stale trials; use PostgreSQL for several machines.",
        NetworkFilesystemWarning,
        stacklevel=3,
    )


def _connect_timeout(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() in ("postgresql", "mysql"):
        return {"connect_timeout": 10}
    return {}


def _first_line(exc: BaseException, url: str) -> str:
    """The first line of an error's message (its driver's, when wrapped), without secrets."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return _without_secrets(line, url)


_EXAMPLE = "'sqlite:///prl_tune.db' or 'postgresql://user@host/db'"
