"""GPU placement of worker processes: which GPU each worker gets, and that it really sees it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import end_group, start_cli
from fixtures.worker_tasks import marked_params, markers_in

from prl_tune.hosts.optuna import assign_gpus, visible_gpus
from prl_tune.store import OWNER_ATTR


@pytest.mark.parametrize(
    ("gpus", "workers", "per_gpu", "expected"),
    [
        (["0", "1"], 4, 1, ["0", "1", "0", "1"]),  # round-robin
        (["0", "1", "2"], 2, 1, ["0", "1"]),  # fewer workers than GPUs
        (["0", "1"], 4, 2, ["0", "0", "1", "1"]),  # two per GPU
        (["0", "1"], 5, 2, ["0", "0", "1", "1", "0"]),  # past the last GPU: from the first
        (["GPU-a", "GPU-b"], 2, 1, ["GPU-a", "GPU-b"]),  # UUIDs as given
        (["3"], 3, 1, ["3", "3", "3"]),
        ([], 3, 2, [None, None, None]),  # no GPU: the environment is left alone
    ],
)
def test_workers_are_spread_over_the_gpus(
    gpus: list[str], workers: int, per_gpu: int, expected: list[str | None]
) -> None:
    assert assign_gpus(gpus, workers, workers_per_gpu=per_gpu) == expected


@pytest.mark.parametrize(
    ("workers", "per_gpu", "message"),
    [
        (0, 1, "workers must be >= 1 but got 0."),
        (2, 0, "workers_per_gpu must be >= 1 but got 0."),
    ],
)
def test_bad_counts_are_refused(workers: int, per_gpu: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        assign_gpus(["0"], workers, workers_per_gpu=per_gpu)


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("0,1", ["0", "1"]),
        (" 2, 3 ", ["2", "3"]),
        ("", []),
        ("-1", []),  # CUDA's way to hide every GPU
        ("0,-1,1", ["0"]),  # CUDA ignores everything from an invalid index on
        ("GPU-5e3c,MIG-1a2b", ["GPU-5e3c", "MIG-1a2b"]),
    ],
)
def test_visible_gpus_read_cuda_visible_devices_as_cuda_does(
    listed: str, expected: list[str]
) -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": listed}) == expected


def test_each_worker_process_sees_the_gpu_it_was_given_and_its_trials_record_it(
    write_study, tmp_path: Path
) -> None:
    """The command is given two (fake) GPUs; the task runs on the CPU and writes down the
    ``CUDA_VISIBLE_DEVICES`` its process sees."""
    markers = tmp_path / "markers"
    markers.mkdir()
    path, storage = write_study(
        name="gpus",
        n_trials=4,
        epochs=2,
        task="fixtures.worker_tasks:marked",
        task_params=marked_params(markers, 0.5),
        study_extra="workers = 2",
    )
    log = tmp_path / "log"
    command = start_cli(
        ["tune", str(path)], cwd=tmp_path, log=log, env={"CUDA_VISIBLE_DEVICES": "3,5"}
    )
    try:
        assert command.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        end_group(command)
    seen = {m["pid"]: m["cuda_visible_devices"] for m in markers_in(markers)}
    assert sorted(seen.values()) == ["3", "5"]  # one worker on each
    trials = optuna.load_study(study_name="gpus", storage=storage).get_trials()
    for trial in trials:
        assert trial.user_attrs["gpu"] == seen[trial.user_attrs[OWNER_ATTR]["pid"]]
        assert trial.user_attrs["device"] == "cpu"
