"""Running trials in the store: owners, supervisors, orphans, heartbeats, the budget count and
the resumed sampler."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.config import SpecError, StudySpec
from prl_tune.store import (
    GRACE_ENV,
    OWNER_ATTR,
    Heartbeat,
    claim,
    counted_trials,
    fail_orphans,
    fail_trials_of,
    heartbeat_grace_s,
    heartbeat_interval_s,
    make_sampler,
    open_storage,
    process_record,
    take_worker_number,
    uses_budget,
)


def _study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'store.db'}")
    return optuna.create_study(study_name="s", storage=storage)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_trials_of_a_dead_process_on_this_host_are_failed_at_once(tmp_path: Path) -> None:
    study = _study(tmp_path)
    mine, dead, elsewhere, reused = (study.ask() for _ in range(4))
    claim(mine)
    here = socket.gethostname()
    dead.set_user_attr(OWNER_ATTR, {"host": here, "pid": _dead_pid(), "started": None})
    elsewhere.set_user_attr(OWNER_ATTR, {"host": "other", "pid": _dead_pid(), "started": None})
    # A live pid whose start time differs: the pid was reused by another process.
    reused.set_user_attr(OWNER_ATTR, {"host": here, "pid": os.getpid(), "started": "0"})
    unowned = study.ask()

    failed = fail_orphans(study)

    assert sorted(failed) == sorted([dead.number, reused.number])
    trials = {t.number: t for t in study.get_trials()}
    for number in (dead.number, reused.number):
        assert trials[number].state == TrialState.FAIL
        assert "died while it ran" in trials[number].user_attrs["fail_reason"]
    for trial in (mine, elsewhere, unowned):
        assert trials[trial.number].state == TrialState.RUNNING
    # A failed orphan does not use up the budget: it is re-run.
    assert counted_trials(study) == 3
    assert fail_orphans(study) == []


def test_heartbeat_keeps_held_trials_fresh_and_lets_others_go_stale(tmp_path: Path) -> None:
    # A one-second grace period, so staleness shows within the test.
    url = f"sqlite:///{tmp_path / 'beats.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage)
    held, dropped, never = study.ask(), study.ask(), study.ask()
    with Heartbeat(storage, interval=0.2) as beat:
        beat.add(held._trial_id)
        beat.add(dropped._trial_id)
        beat.discard(dropped._trial_id)
        time.sleep(2.5)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[held.number] == TrialState.RUNNING  # beaten every 0.2 s
    assert states[dropped.number] == TrialState.FAIL  # one beat, then none for 2.5 s
    assert states[never.number] == TrialState.RUNNING  # never beaten: not judged by beats


def _draws(sampler: optuna.samplers.BaseSampler, count: int = 3) -> list[float]:
    study = optuna.create_study(sampler=sampler)
    return [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(count)]


def test_a_resumed_study_gets_a_sampler_with_new_draws() -> None:
    spec = StudySpec.from_dict(
        {
            "study": {"name": "s", "n_trials": 9, "sampler": "random"},
            "task": {"epochs": 1},
            "space": {"lr_max": [0.01, 1.0]},
        }
    )
    first = _draws(make_sampler(spec, done=0))
    assert first == _draws(make_sampler(spec, done=0))  # seeded: repeatable
    resumed = _draws(make_sampler(spec, done=3))
    other_worker = _draws(make_sampler(spec, worker=1))
    assert not set(first) & set(resumed) and not set(first) & set(other_worker)


@pytest.mark.parametrize("concurrent", [False, True])
def test_tpe_uses_the_constant_liar_only_for_concurrent_trials(concurrent: bool) -> None:
    spec = StudySpec.from_dict(
        {"study": {"name": "s", "n_trials": 9}, "task": {"epochs": 1}, "space": {}}
    )
    sampler = make_sampler(spec, concurrent=concurrent)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._constant_liar is concurrent


def test_a_dead_workers_trial_is_left_to_its_live_supervisor(tmp_path: Path) -> None:
    study = _study(tmp_path)
    watched, orphaned = study.ask(), study.ask()
    here = socket.gethostname()
    dead_supervisor = {"host": here, "pid": _dead_pid(), "started": None}
    for trial, supervisor in ((watched, process_record()), (orphaned, dead_supervisor)):
        owner = {"host": here, "pid": _dead_pid(), "started": None, "supervisor": supervisor}
        trial.set_user_attr(OWNER_ATTR, owner)

    assert fail_orphans(study) == [orphaned.number]  # the live supervisor fails its own


def test_an_unowned_trial_is_failed_once_older_than_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRACE_ENV, "1")
    study = _study(tmp_path)
    unowned = study.ask()  # its process died between ask and claim
    assert fail_orphans(study) == []
    time.sleep(1.2)
    assert fail_orphans(study) == [unowned.number]
    assert "before it claimed" in study.get_trials()[0].user_attrs["fail_reason"]


def test_fail_trials_of_a_process_records_why_and_the_trial_is_run_again(tmp_path: Path) -> None:
    study = _study(tmp_path)
    mine, other = study.ask(), study.ask()
    claim(mine)
    other.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": 1, "started": None})
    raised = study.ask()
    raised.set_user_attr("error", "RuntimeError: boom")
    study.tell(raised, state=TrialState.FAIL)

    failed = fail_trials_of(
        study, os.getpid(), reason="its worker died", error="worker killed by signal 9"
    )

    assert failed == [mine.number]
    trials = study.get_trials()
    assert trials[mine.number].user_attrs["error"] == "worker killed by signal 9"
    assert trials[mine.number].user_attrs["fail_reason"] == "its worker died"
    assert not uses_budget(trials[mine.number])  # run again
    assert uses_budget(trials[raised.number])  # its own code raised: it counts
    assert trials[other.number].state == TrialState.RUNNING and uses_budget(trials[other.number])
    assert counted_trials(study) == 2


def test_an_enqueued_trial_uses_no_budget_until_it_is_asked(tmp_path: Path) -> None:
    study = _study(tmp_path)
    study.enqueue_trial({"x": 0.5})
    assert counted_trials(study) == 0
    study.ask()
    assert counted_trials(study) == 1


def test_each_worker_takes_its_own_number(tmp_path: Path) -> None:
    study = _study(tmp_path)
    assert [take_worker_number(study) for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("value", ["0", "soon", "1.5"])
def test_a_bad_grace_period_is_one_line_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRACE_ENV, value)
    with pytest.raises(SpecError) as info:
        heartbeat_grace_s()
    assert str(info.value) == (f"{GRACE_ENV}: must be an integer >= 1 (seconds) but got {value!r}.")


def test_a_short_grace_shortens_the_heartbeat_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (heartbeat_grace_s(), heartbeat_interval_s()) == (60, 10.0)
    monkeypatch.setenv(GRACE_ENV, "3")
    assert (heartbeat_grace_s(), heartbeat_interval_s()) == (3, 1.0)
