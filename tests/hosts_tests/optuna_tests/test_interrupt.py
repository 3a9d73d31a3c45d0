"""Ctrl-C of ``prl-tune tune`` on the Optuna backend: nothing is left RUNNING, a re-run finishes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import cli_env, signal_when_a_trial_runs
from optuna.trial import TrialState

from prl_tune.store import counted_trials


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_fails_the_running_trials_and_a_rerun_finishes(
    workers: int, write_study, tmp_path: Path
) -> None:
    path, storage = write_study(
        name="ctrl-c",
        n_trials=3,
        epochs=3,
        task="fixtures.ray_faults:digits_slow",
        task_params='params = { model = "mlp", pause = 1.0 }',
        study_extra=f"workers = {workers}",
    )
    driver, running, err = signal_when_a_trial_runs(
        ["tune", str(path)], cwd=tmp_path, storage=storage, name="ctrl-c", signum=signal.SIGINT
    )
    assert driver.returncode == 130, err[-3000:]
    assert "prl-tune: interrupted" in err and "Traceback" not in err
    study = optuna.load_study(study_name="ctrl-c", storage=storage)
    states = {t.number: t.state for t in study.get_trials()}
    assert TrialState.RUNNING not in states.values(), states  # before any re-run
    assert states[running.number] == TrialState.FAIL

    rerun = subprocess.run(
        [sys.executable, "-m", "prl_tune.cli", "tune", str(path)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = study.get_trials()
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert counted_trials(study) == 3
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all("fail_reason" in t.user_attrs for t in failed)
