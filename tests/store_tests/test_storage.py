"""The SQLite store: WAL journaling, trials of a killed worker, heartbeats of a live one."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import end_group, start_cli
from fixtures.worker_tasks import marked_params, wait_for_marker
from optuna.trial import TrialState

from prl_tune.cli import main
from prl_tune.store import (
    GRACE_ENV,
    OWNER_ATTR,
    StorageError,
    check_storage_url,
    fail_orphans,
    open_storage,
    watch_heartbeats,
)

MARKED = "fixtures.worker_tasks:marked"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_sqlite_store_uses_wal_and_is_a_plain_optuna_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s")
    mode = sqlite3.connect(tmp_path / "a.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    # The standard Optuna API opens it without prl_tune.
    assert optuna.load_study(study_name="s", storage=url).study_name == "s"


def test_check_storage_url_creates_nothing(tmp_path: Path) -> None:
    check_storage_url(f"sqlite:///{tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()
    with pytest.raises(StorageError, match="folder"):
        check_storage_url(f"sqlite:///{tmp_path / 'missing' / 'new.db'}")


def test_trial_of_a_killed_worker_is_failed_and_rerun(write_study, tmp_path: Path) -> None:
    """A real worker (a one-worker command is its own worker) is SIGKILLed mid-trial; the next
    run on this host fails its trial at once, since its owner is gone, and runs another."""
    markers = tmp_path / "markers"
    markers.mkdir()
    path, url = write_study(
        n_trials=2, epochs=3, task=MARKED, task_params=marked_params(markers, 1)
    )
    command = start_cli(["tune", str(path)], cwd=tmp_path, log=tmp_path / "log")
    try:
        victim = wait_for_marker(markers, command)
        os.kill(victim["pid"], signal.SIGKILL)
        command.wait(timeout=120)
    finally:
        end_group(command)
    assert victim["pid"] == command.pid
    study = optuna.load_study(study_name="t", storage=url)
    (orphan,) = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert orphan.user_attrs[OWNER_ATTR]["pid"] == victim["pid"]

    assert main(["tune", str(path), "--quiet"]) == 0
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert "error" not in trials[orphan.number].user_attrs
    assert "died while it ran" in trials[orphan.number].user_attrs["fail_reason"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2  # the orphan does not use up the budget: it was run again


def test_a_trial_running_in_a_real_process_gets_heartbeats(
    write_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 3 s grace (a beat a second), a trial of another process stays fresh past the
    grace: its heartbeat moves on, and no one fails it as stale."""
    monkeypatch.setenv(GRACE_ENV, "3")
    markers = tmp_path / "markers"
    markers.mkdir()
    path, url = write_study(
        n_trials=1, epochs=8, task=MARKED, task_params=marked_params(markers, 1)
    )
    command = start_cli(
        ["tune", str(path)], cwd=tmp_path, log=tmp_path / "log", env={GRACE_ENV: "3"}
    )
    try:
        wait_for_marker(markers, command)
        study = optuna.load_study(study_name="t", storage=watch_heartbeats(open_storage(url)))
        (trial,) = study.get_trials(states=(TrialState.RUNNING,))
        first = _heartbeat(tmp_path / "store.db", trial._trial_id)
        time.sleep(4.5)  # past the grace
        assert fail_orphans(study) == []
        assert study.get_trials()[trial.number].state == TrialState.RUNNING
        assert (_heartbeat(tmp_path / "store.db", trial._trial_id) - first).total_seconds() >= 3
        assert command.wait(timeout=120) == 0, (tmp_path / "log").read_text()[-3000:]
    finally:
        end_group(command)
    assert study.get_trials()[trial.number].state == TrialState.COMPLETE


def _heartbeat(database: Path, trial_id: int) -> datetime:
    """The last heartbeat of a trial, as the store holds it."""
    connection = sqlite3.connect(database)
    try:
        (stamp,) = connection.execute(
            "SELECT heartbeat FROM trial_heartbeats WHERE trial_id = ?", (trial_id,)
        ).fetchone()
    finally:
        connection.close()
    return datetime.fromisoformat(stamp)


@pytest.mark.parametrize("command", ["tune", "range-test"])
def test_every_command_redacts_the_storage_password(command: str, write_study, capsys) -> None:
    path, _ = write_study()
    url = "postgresql://tuner:s3cret-pw@127.0.0.1:1/studies"
    assert main([command, str(path), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "s3cret-pw" not in err and "tuner:***@127.0.0.1" in err
