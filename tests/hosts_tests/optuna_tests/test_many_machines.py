"""Several ``prl-tune tune`` commands on one storage, as on several machines: separate process
trees that share nothing but the URL, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import end_group, signal_group, start_cli
from fixtures.worker_tasks import assert_complete, marked_params, markers_in
from optuna.trial import TrialState

from prl_tune.store import GRACE_ENV, OWNER_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

MARKED = "fixtures.worker_tasks:marked"
TIMEOUT_S = 240


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_server").create_database())


def test_two_commands_at_once_share_the_budget_and_each_enqueued_trial(
    url: str, write_study, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    path, _ = write_study(
        name="two",
        n_trials=8,
        epochs=2,
        task=MARKED,
        task_params=marked_params(markers, 0.3),
        schedulers='["plrs", "constant"]',  # allocation "equal": enqueued round-robin
        study_extra='workers = 2\nsampler = "random"',
    )
    logs = [tmp_path / f"machine-{i}.log" for i in range(2)]
    commands = [
        start_cli(["tune", str(path), "--storage", url], cwd=tmp_path, log=log) for log in logs
    ]
    try:
        codes = [command.wait(timeout=TIMEOUT_S) for command in commands]
    finally:
        for command in commands:
            end_group(command)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    study = optuna.load_study(study_name="two", storage=url)
    trials = assert_complete(study, 8)
    assert len(trials) == 8  # not one beyond the budget
    assert Counter(t.params["scheduler"] for t in trials) == {"plrs": 4, "constant": 4}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 8  # no duplicate
    supervisors = {t.user_attrs[OWNER_ATTR]["supervisor"]["pid"] for t in trials}
    assert supervisors == {command.pid for command in commands}  # both machines worked


def test_a_vanished_machines_trial_is_failed_after_the_grace_and_run_again(
    url: str, write_study, tmp_path: Path
) -> None:
    """Machine A is SIGKILLed mid-trial, its trial left RUNNING with an owner on another host
    (so only its heartbeat can tell it is dead); machine B fails it once the grace has passed
    (3 s here) and runs the trial again."""
    grace = 3
    markers = tmp_path / "markers"
    markers.mkdir()
    path, _ = write_study(
        name="vanish",
        n_trials=4,
        epochs=4,
        task=MARKED,
        task_params=marked_params(markers, 0.5),
    )
    env = {GRACE_ENV: str(grace)}
    args = ["tune", str(path), "--storage", url]
    machine_a = start_cli(args, cwd=tmp_path, log=tmp_path / "a.log", env=env)
    machine_b = start_cli(args, cwd=tmp_path, log=tmp_path / "b.log", env=env)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not any(m["pid"] == machine_a.pid for m in markers_in(markers)):
            assert machine_a.poll() is None and time.monotonic() < deadline, "A ran no trial"
            time.sleep(0.05)
        study = optuna.load_study(study_name="vanish", storage=url)
        (lost,) = [
            t
            for t in study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs[OWNER_ATTR]["pid"] == machine_a.pid
        ]
        elsewhere = {**lost.user_attrs[OWNER_ATTR], "host": "vanished-machine"}
        optuna.Trial(study, lost._trial_id).set_user_attr(OWNER_ATTR, elsewhere)
        signal_group(machine_a, signal.SIGKILL)
        killed_at = datetime.now()
        machine_a.wait(timeout=TIMEOUT_S)
        assert machine_b.wait(timeout=TIMEOUT_S) == 0, (tmp_path / "b.log").read_text()[-3000:]
    finally:
        end_group(machine_a)
        end_group(machine_b)
    trials = assert_complete(study, 4)
    failed = trials[lost.number]
    assert failed.state == TrialState.FAIL and failed.datetime_complete is not None
    assert (failed.datetime_complete - killed_at).total_seconds() >= grace - 1.5
    assert len(trials) == 5  # the budget, and the lost trial run again
    rerun = trials[-1]
    assert rerun.user_attrs[OWNER_ATTR]["pid"] == machine_b.pid
