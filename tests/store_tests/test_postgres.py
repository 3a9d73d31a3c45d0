"""A real PostgreSQL 15 server (``fixtures.postgres``): ``prl-tune tune`` on it end to end, and
processes that start on a new database at once."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from fixtures.postgres import PASSWORD, PostgresServer
from optuna.trial import TrialState
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import prl_tune.store._urls as urls
from prl_tune.cli import main
from prl_tune.config import load_spec
from prl_tune.store import (
    SETUP_LOCK_KEY,
    SPEC_ATTR,
    StorageError,
    create_or_resume,
    redact,
    setup_lock,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_the_server_listens_on_loopback_and_asks_for_the_password(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database()
    database = url.rsplit("/", 1)[1]
    assert _scalar(url, "SELECT current_user") == "u"
    assert _scalar(url, "SHOW listen_addresses") == "127.0.0.1"
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(Path("/nonexistent/pgpass")))
    for refused in (
        postgres_server.url_for(database, password="wrong"),
        f"postgresql://u@127.0.0.1:{postgres_server.port}/{database}",
    ):
        with pytest.raises(OperationalError, match="password"):
            _scalar(refused, "SELECT 1")


def test_tune_on_postgres_runs_the_budget_and_every_reader_opens_it(
    postgres_server: PostgresServer, write_study, tmp_path: Path, capsys
) -> None:
    path, _ = write_study(n_trials=3)
    url = postgres_server.create_database()
    assert main(["tune", str(path), "--storage", url, "--quiet"]) == 0
    trials = optuna.load_study(study_name="t", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        assert 0 <= trial.user_attrs["lr_min"] <= trial.user_attrs["lr_max"]
    capsys.readouterr()

    assert main(["summary", "--storage", url]) == 0
    summary = capsys.readouterr().out
    assert "study 't': 3 trials" in summary and "COMPLETE 3" in summary
    assert "best lr_max" in summary
    html = tmp_path / "r.html"
    assert main(["report", "--storage", url, "--study", "t", "--out", str(html)]) == 0
    assert "<html" in html.read_text(encoding="utf-8").lower()

    # The same command with a larger budget resumes the study on the server.
    assert main(["tune", str(path), "--storage", url, "--quiet", "--n-trials", "4"]) == 0
    resumed = optuna.load_study(study_name="t", storage=url).trials
    assert [t.state for t in resumed] == [TrialState.COMPLETE] * 4
    assert [t.params for t in resumed[:3]] == [t.params for t in trials]


def test_a_url_without_its_password_takes_it_from_pgpassword(
    postgres_server: PostgresServer, write_study, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The password stays out of the command line and the study file: libpq reads PGPASSWORD
    # (or ~/.pgpass).
    path, _ = write_study(n_trials=1)
    database = postgres_server.create_database().rsplit("/", 1)[1]
    url = f"postgresql://u@127.0.0.1:{postgres_server.port}/{database}"
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert main(["tune", str(path), "--storage", url, "--quiet"]) == 0
    assert len(optuna.load_study(study_name="t", storage=url).trials) == 1


def _create(study_file: str, url: str, ready: Any, queue: Any) -> None:
    spec = load_spec(study_file, overrides={"study.storage": url})
    ready.wait()
    try:
        create_or_resume(spec)
        queue.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        queue.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process")
def test_processes_starting_at_once_on_a_new_database_create_it_once(
    postgres_server: PostgresServer, write_study
) -> None:
    # Without a lock, all but one fail on Optuna's CREATE TYPE / CREATE TABLE, or on the study.
    path, _ = write_study()
    url = postgres_server.create_database()
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(4)
    queue = context.Queue()
    processes = [
        context.Process(target=_create, args=(str(path), url, ready, queue)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [queue.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
    assert outcomes == ["ok"] * 4
    assert optuna.get_all_study_names(url) == ["t"]
    stored = optuna.load_study(study_name="t", storage=url).user_attrs[SPEC_ATTR]
    assert stored["study"]["storage"] == redact(url)


def test_a_held_set_up_lock_is_waited_for_a_bounded_time(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database()
    monkeypatch.setattr(urls, "SETUP_LOCK_TIMEOUT_S", 1)
    holder = create_engine(url, poolclass=NullPool)
    try:
        with holder.connect() as connection:  # another machine, in the middle of its set-up
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK_KEY})
            connection.commit()
            with pytest.raises(StorageError) as raised, setup_lock(url):
                pass
    finally:
        holder.dispose()
    message = str(raised.value)
    assert message.startswith("storage: the set-up lock on 'postgresql://u:***@127.0.0.1:")
    assert "must come free within 1 s" in message and "lock timeout" in message
    with setup_lock(url):  # free again: the server dropped it with its holder's connection
        pass
