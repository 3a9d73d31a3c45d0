"""The SQLite store: WAL journaling, stale trials of a killed worker, budget counting."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.cli import main
from prl_tune.store import StorageError, check_storage_url, open_storage

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
    path, url = write_study(n_trials=2)
    assert main(["tune", str(path), "--quiet"]) == 0
    # A worker that was killed mid-trial: a RUNNING trial whose last heartbeat is old.
    storage = open_storage(url)
    study = optuna.load_study(study_name="t", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        orphan = study.ask()
    study_id = storage.get_study_id_from_name("t")
    storage.record_heartbeat(
        storage.get_trial_id_from_study_id_trial_number(study_id, orphan.number)
    )
    db = sqlite3.connect(tmp_path / "store.db")
    with db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    db.close()

    assert main(["tune", str(path), "--quiet", "--n-trials", "3"]) == 0
    trials = optuna.load_study(study_name="t", storage=url).trials
    assert trials[orphan.number].state == TrialState.FAIL
    assert "error" not in trials[orphan.number].user_attrs
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3  # the orphan does not use up the budget: it was run again


@pytest.mark.parametrize("command", ["tune", "range-test"])
def test_every_command_redacts_the_storage_password(command: str, write_study, capsys) -> None:
    path, _ = write_study()
    url = "postgresql://tuner:s3cret-pw@127.0.0.1:1/studies"
    assert main([command, str(path), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "s3cret-pw" not in err and "tuner:***@127.0.0.1" in err
