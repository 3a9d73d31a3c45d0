"""``[study] threads``: the torch CPU threads each trial runs with, in this process and in
worker processes, and the caller's own thread count left as it was."""

from __future__ import annotations

import os

import optuna
import pytest
import torch
from fixtures import user_tasks
from optuna.trial import TrialState

from prl_tune.config import SpecError, StudySpec, load_spec
from prl_tune.hosts.optuna import run_study


def _spec(threads: int | None, *, workers: int = 1) -> StudySpec:
    study = {"name": "t", "n_trials": 2, "storage": "sqlite:///unused.db", "workers": workers}
    if threads is not None:
        study["threads"] = threads
    return StudySpec.from_dict(
        {
            "study": study,
            "task": {"name": "fixtures.user_tasks:threads_seen", "epochs": 1, "device": "cpu"},
            "space": {"lr_max": [0.01, 0.1]},
        }
    )


def test_the_default_is_the_callers_thread_count_with_the_cores_shared_by_the_workers() -> None:
    cores = os.cpu_count() or 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 does
        assert _spec(None).threads == 1
        assert _spec(None, workers=2).threads == 1
        torch.set_num_threads(4 * cores)
        assert _spec(None).threads == cores
        assert _spec(None, workers=2).threads == max(1, cores // 2)
        assert _spec(None, workers=4 * cores).threads == 1
        assert _spec(3, workers=2).threads == 3  # set in the file: taken as it is
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_thread_count_is_one_line_naming_threads(bad: object) -> None:
    with pytest.raises((SpecError, ValueError, TypeError), match="threads") as caught:
        _spec(bad)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_in_process_trials_run_with_the_study_threads_and_the_caller_keeps_its_own(
    write_study,
) -> None:
    path, storage = write_study(
        task="fixtures.user_tasks:threads_seen", task_params="", study_extra="threads = 1"
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        user_tasks.THREADS_SEEN.clear()
        study = run_study(load_spec(path), stream=None)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert user_tasks.THREADS_SEEN == [1, 1]
    assert optuna.load_study(study_name="t", storage=storage).best_value is not None


def test_threads_may_change_between_runs_of_a_study(write_study) -> None:
    path, _ = write_study(task="fixtures.user_tasks:threads_seen", task_params="")
    run_study(load_spec(path), n_trials=1, stream=None)
    spec = load_spec(path).with_study(threads=1)
    user_tasks.THREADS_SEEN.clear()
    study = run_study(spec, stream=None)  # resumes: threads is no part of the identity
    assert len(study.trials) == 2
    assert user_tasks.THREADS_SEEN == [1]
