"""The supervisor of ``prl-tune tune --workers K``, with real processes and real signals: a
worker that dies is replaced and its trial run again, the study ends with its budget."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import end_group, signal_group, start_cli
from fixtures.worker_tasks import assert_complete, marked_params, markers_in, wait_for_marker
from optuna.trial import FrozenTrial, TrialState

from prl_tune.store import OWNER_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

MARKED = "fixtures.worker_tasks:marked"
TIMEOUT_S = 180


def owned_by(trial: FrozenTrial, pid: int) -> bool:
    return trial.user_attrs.get(OWNER_ATTR, {}).get("pid") == pid


def test_a_killed_worker_is_replaced_and_the_study_ends_with_its_budget(
    write_study, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    path, storage = write_study(
        name="kill-one",
        n_trials=4,
        epochs=3,
        task=MARKED,
        task_params=marked_params(markers, 0.5),
        study_extra="workers = 2",
    )
    log = tmp_path / "log"
    command = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
    try:
        victim = wait_for_marker(markers, command)
        os.kill(victim["pid"], signal.SIGKILL)  # mid-trial: it sleeps 0.5 s per epoch
        returncode = command.wait(timeout=TIMEOUT_S)
    finally:
        end_group(command)
    err = log.read_text()
    assert returncode == 0, err[-3000:]
    assert "Traceback" not in err
    study = optuna.load_study(study_name="kill-one", storage=storage)
    trials = assert_complete(study, 4)
    killed = [t for t in trials if owned_by(t, victim["pid"])]
    assert [t.state for t in killed] == [TrialState.FAIL]
    assert killed[0].user_attrs["error"] == "worker killed by signal 9"
    assert f"trial {killed[0].number} failed, to be run again" in err
    assert "killed by signal 9 (SIGKILL)" in err
    assert "started another in its place (restart 1 of 4)" in err


@pytest.mark.parametrize(
    ("how", "death"),
    [("kill", "worker killed by signal 9"), ("exit", "worker exited with code 7")],
)
def test_workers_that_keep_dying_end_the_command_in_one_line_after_the_restart_limit(
    how: str, death: str, write_study, tmp_path: Path
) -> None:
    path, storage = write_study(
        name="dies",
        n_trials=3,
        task="fixtures.worker_tasks:dies",
        task_params=f'params = {{ how = "{how}" }}\ndevice = "cpu"',
        study_extra="workers = 2\nworker_restarts = 1",
    )
    log = tmp_path / "log"
    command = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
    try:
        returncode = command.wait(timeout=TIMEOUT_S)
    finally:
        end_group(command)
    err = log.read_text()
    assert returncode == 3, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "prl-tune: error: the study holds 0 of its 3 trials: worker processes died 3 times and "
        f"the restart limit is 1 ([study] worker_restarts); the last: {death}. Run the same "
        "command again to continue."
    )
    trials = optuna.load_study(study_name="dies", storage=storage).get_trials()
    assert len(trials) == 3  # two workers, one replacement: each died in its first trial
    assert all(t.state == TrialState.FAIL and t.user_attrs["error"] == death for t in trials)
    assert "no restart left (the limit is 1: [study] worker_restarts)" in err


def test_ctrl_c_of_the_whole_command_stops_every_worker_and_a_rerun_finishes(
    write_study, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    path, storage = write_study(
        name="ctrl-c-group",
        n_trials=4,
        epochs=4,
        task=MARKED,
        task_params=marked_params(markers, 0.5),
        study_extra="workers = 2",
    )
    log = tmp_path / "log"
    command = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
    try:
        running = wait_for_marker(markers, command)
        signal_group(command, signal.SIGINT)  # what a terminal sends on Ctrl-C
        returncode = command.wait(timeout=TIMEOUT_S)
    finally:
        end_group(command)
    err = log.read_text()
    assert returncode == 130, err[-3000:]
    assert "prl-tune: interrupted" in err and "Traceback" not in err
    study = optuna.load_study(study_name="ctrl-c-group", storage=storage)
    trials = study.get_trials()
    assert TrialState.RUNNING not in {t.state for t in trials}
    (interrupted,) = [t for t in trials if owned_by(t, running["pid"])]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"] == "interrupted (Ctrl-C) while it ran"

    rerun = start_cli(["tune", str(path)], cwd=tmp_path, log=tmp_path / "rerun.log")
    try:
        assert rerun.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    finally:
        end_group(rerun)
    assert_complete(study, 4)


def test_sigkill_of_the_whole_command_then_a_rerun_resumes_and_completes(
    write_study, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    path, storage = write_study(
        name="kill-all",
        n_trials=4,
        epochs=3,
        task=MARKED,
        task_params=marked_params(markers, 0.5),
        study_extra="workers = 2",
    )
    command = start_cli(["tune", str(path)], cwd=tmp_path, log=tmp_path / "log")
    try:
        victim = wait_for_marker(markers, command)
        signal_group(command, signal.SIGKILL)  # the command, its workers, its fork server
        command.wait(timeout=TIMEOUT_S)
    finally:
        end_group(command)
    study = optuna.load_study(study_name="kill-all", storage=storage)
    left = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert any(owned_by(t, victim["pid"]) for t in left)

    log = tmp_path / "rerun.log"
    rerun = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
    try:
        assert rerun.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        end_group(rerun)
    trials = assert_complete(study, 4)
    for orphan in left:
        again = trials[orphan.number]
        assert again.state == TrialState.FAIL and "error" not in again.user_attrs
        assert "died while it ran" in again.user_attrs["fail_reason"]
        assert f"trial {orphan.number} FAIL" in log.read_text()


@pytest.mark.slow
def test_ten_kills_in_a_row_lose_no_trial_and_leave_the_sqlite_file_sound(
    write_study, tmp_path: Path
) -> None:
    """Kill a worker (the command carries on) and the whole command (then run it again) in
    turn, each at a random moment of a trial."""
    markers = tmp_path / "markers"
    markers.mkdir()
    n_trials = 30
    path, storage = write_study(
        name="ten-kills",
        n_trials=n_trials,
        epochs=2,
        task=MARKED,
        task_params=marked_params(markers, 0.3),
        study_extra="workers = 2\nworker_restarts = 30",
    )
    chance = random.Random(0)
    log = tmp_path / "log"
    command: subprocess.Popen[bytes] | None = None
    seen = 0
    try:
        for kill in range(10):
            if command is None or command.poll() is not None:
                command = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
            marker = wait_for_marker(markers, command, after=seen)
            seen = len(markers_in(markers))
            time.sleep(chance.uniform(0.0, 0.6))  # in the trial, or at its tell, or the next ask
            if kill % 2 == 0:
                try:
                    os.kill(marker["pid"], signal.SIGKILL)
                except ProcessLookupError:  # it had ended
                    pass
            else:
                signal_group(command, signal.SIGKILL)
                command.wait(timeout=TIMEOUT_S)
        if command.poll() is not None:
            command = start_cli(["tune", str(path)], cwd=tmp_path, log=log)
        assert command.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        if command is not None:
            end_group(command)
    assert "Traceback" not in log.read_text()
    study = optuna.load_study(study_name="ten-kills", storage=storage)
    trials = assert_complete(study, n_trials)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) >= 5  # the kills landed in trials, which were run again
    assert all("fail_reason" in t.user_attrs for t in failed)
    assert {t.user_attrs.get("error") for t in failed} <= {None, "worker killed by signal 9"}
    database = sqlite3.connect(tmp_path / "store.db")
    try:
        assert database.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        database.close()
