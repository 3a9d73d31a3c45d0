"""A storage that cannot be used: one line that names ``storage``, the rule and the URL without
its password, exit 2, nothing written; a missing driver names what to install; grpc:// is refused
with its reasons; SQLite on a network filesystem is warned about."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer
from fixtures.ray_cluster import free_port

import prl_tune.store._urls as urls
from prl_tune.cli import main
from prl_tune.store import (
    NetworkFilesystemWarning,
    StorageError,
    check_storage_url,
    network_filesystem,
    open_storage,
)

SECRET = "S3cretPw"
COMMANDS = ("tune", "range-test", "report", "summary")


def _faults(server: PostgresServer) -> dict[str, tuple[str, str]]:
    """Bad URLs, all holding the secret, and the rule each message must state."""
    existing = server.create_database()
    database = existing.rsplit("/", 1)[1]
    return {
        "unreachable": (
            server.url_for(database, port=free_port()),
            "the database server must be reachable but got",
        ),
        "wrong password": (
            server.url_for(database, password=SECRET + "0"),
            "the server must accept the URL's user and password but got",
        ),
        "missing database": (
            server.url_for("nodb"),
            "the database must exist on the server (create it first: createdb -O u nodb)",
        ),
        "missing driver": (
            existing.replace("postgresql://", "postgresql+pg8000://"),
            "module 'pg8000' is missing; install it with: pip install pg8000",
        ),
        "password in the query": (
            f"postgresql://u@127.0.0.1:{free_port()}/{database}?password={SECRET}",
            "the database server must be reachable but got",
        ),
        "port not a number": (
            f"postgresql://u:{SECRET}@127.0.0.1:port{server.port}/{database}",
            "storage: must be a SQLAlchemy URL like",
        ),
    }


def _run(command: str, study: Path, url: str) -> int:
    if command in ("tune", "range-test"):
        return main([command, str(study), "--storage", url])
    return main([command, "--storage", url])


def test_each_storage_fault_is_one_line_exit_2_without_the_password_and_writes_nothing(
    postgres_server: PostgresServer,
    write_study,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, sqlite_url = write_study()
    monkeypatch.chdir(tmp_path)  # where a range test's plot or a report would go
    before = sorted(tmp_path.iterdir())
    faults = _faults(postgres_server)
    databases = postgres_server.psql("prl", "SELECT datname FROM pg_database ORDER BY 1")
    for fault, (url, rule) in faults.items():
        for command in COMMANDS:
            code = _run(command, path, url)
            out, err = capfd.readouterr()  # the file descriptors: logging and workers too
            where = f"{command} with {fault}: {err!r}"
            assert code == 2, where
            assert out == "" and len(err.strip().splitlines()) == 1, where
            assert err.startswith("prl-tune: error: storage: ") and rule in err, where
            assert "***" in err and SECRET not in err, where
    assert sorted(tmp_path.iterdir()) == before  # no store, plot or report
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    assert postgres_server.psql("prl", "SELECT datname FROM pg_database ORDER BY 1") == databases
    existing = faults["wrong password"][0].rsplit("/", 1)[1]
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres_server.psql(existing, tables).strip() == "0"


def test_a_missing_psycopg_names_the_extra_to_install(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what Python sees when it is absent
    with pytest.raises(StorageError) as raised:
        check_storage_url(postgres_server.url)
    message = str(raised.value)
    assert (
        "module 'psycopg' is missing; install it with: pip install 'prl_tune[postgres]'" in message
    )
    assert SECRET not in message


def test_an_installed_driver_that_fails_to_load_is_not_to_be_installed_again(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # psycopg is there, but cannot load its libpq wrapper: installing it again would not help.
    fake = tmp_path / "psycopg"
    fake.mkdir()
    (fake / "__init__.py").write_text('raise ImportError("no pq wrapper available")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n == "psycopg" or n.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(StorageError) as raised:
        check_storage_url(postgres_server.url)
    message = str(raised.value)
    assert "must load but it fails to (no pq wrapper available)" in message
    assert "pip install" not in message and SECRET not in message


def test_grpc_is_refused_with_its_reasons(write_study, capfd: pytest.CaptureFixture[str]) -> None:
    path, storage = write_study()
    assert main(["tune", str(path), "--storage", f"grpc://127.0.0.1:{free_port()}"]) == 2
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("prl-tune: error: storage: grpc:// (Optuna's GrpcStorageProxy)")
    assert "no trial heartbeats" in err and "trial budget across machines" in err
    assert "postgresql://" in err
    assert not Path(storage.removeprefix("sqlite:///")).exists()


MOUNTS = textwrap.dedent(
    r"""
    /dev/nvme0n1p2 / ext4 rw,relatime 0 0
    proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
    fileserver:/export/home /home nfs4 rw,relatime,vers=4.2,rsize=1048576 0 0
    tmpfs /home/alice/scratch tmpfs rw,nosuid 0 0
    //nas/lab\040data /mnt/lab\040data cifs rw,relatime,vers=3.1.1 0 0
    alice@gpu1:/data /mnt/gpu1 fuse.sshfs rw,nosuid,nodev 0 0
    /dev/sdb1 /mnt/gpu1-local ext4 rw 0 0
    """
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/alice/study.db", ("nfs4", "/home")),
        ("/home", ("nfs4", "/home")),
        ("/home/alice/scratch/study.db", None),  # a local mount over the network one
        ("/homework/study.db", None),  # a prefix of the name is not a parent folder
        ("/mnt/lab data/study.db", ("cifs", "/mnt/lab data")),  # \040 is a space
        ("/mnt/gpu1/study.db", ("fuse.sshfs", "/mnt/gpu1")),
        ("/mnt/gpu1-local/study.db", None),
        ("/var/tmp/study.db", None),
    ],
)
def test_network_filesystems_are_found_in_the_mount_table(
    path: str, expected: tuple[str, str] | None
) -> None:
    assert network_filesystem(Path(path), MOUNTS) == expected


def _mount_table(tmp_path: Path, fstype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "mounts"
    table.write_text(f"/dev/sda1 / ext4 rw 0 0\nsrv:/x {tmp_path.resolve()} {fstype} rw 0 0\n")
    monkeypatch.setattr(urls, "_MOUNTS", table)
    monkeypatch.setattr(urls, "_warned", set())


def test_sqlite_on_a_network_filesystem_is_warned_about_once(
    write_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    path, url = write_study(n_trials=1)
    _mount_table(tmp_path, "nfs4", monkeypatch)
    with pytest.warns(NetworkFilesystemWarning) as caught:
        open_storage(url)
        open_storage(url)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "network filesystem (nfs4" in message
    assert "WAL needs shared memory on one host" in message and "use PostgreSQL" in message

    monkeypatch.setattr(urls, "_warned", set())
    assert main(["tune", str(path), "--quiet"]) == 0  # a warning, not an error
    lines = [x for x in capfd.readouterr().err.splitlines() if x.startswith("prl-tune: warning:")]
    assert lines == [f"prl-tune: warning: {message}"]


def test_sqlite_on_a_local_disk_gets_no_warning(
    write_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = write_study()
    _mount_table(tmp_path, "ext4", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetworkFilesystemWarning)
        open_storage(url)
