"""``prl-tune tune --backend ray`` against a real cluster (``ray start --head`` on loopback).

Each study runs the CLI in a subprocess, as a user would, with ``--address`` of the cluster,
and the checks read the store through Optuna's public API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from fixtures.cli_runs import cli_env, signal_when_a_trial_runs
from fixtures.ray_cluster import free_port, ray_head
from optuna.trial import TrialState

from prl_tune.config import StudySpec, load_spec, train_trial
from prl_tune.store import OWNER_ATTR, counted_trials
from prl_tune.training import TrainResult, cpu_threads

_RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with ray_head(num_cpus=2) as address:
        yield address


def _study(
    tmp_path: Path,
    *,
    name: str = "ray",
    n_trials: int = 4,
    epochs: int = 2,
    lr_max: str = "[0.05, 0.5]",
    task: str = "digits",
    task_params: str = 'params = { model = "mlp" }',
    sampler: str = "tpe",
    extra: str = "",
    warm_start: str = "none",
) -> tuple[Path, str]:
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[study]
name = "{name}"
storage = "{storage}"
n_trials = {n_trials}
seed = 0
sampler = "{sampler}"

[task]
name = "{task}"
epochs = {epochs}
{task_params}

[space]
lr_max = {lr_max}
warm_start = "{warm_start}"

[ray]
storage_path = "{tmp_path / "ray_results"}"
{extra}
""",
        encoding="utf-8",
    )
    return path, storage


def _cli(
    *args: str, cwd: Path, timeout: float = _RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prl_tune.cli", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _states(trials: list[optuna.trial.FrozenTrial]) -> Counter[str]:
    return Counter(t.state.name for t in trials)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("none", "FIFOScheduler"),
        ("asha", "AsyncHyperBandScheduler"),
        ("hyperband", "HyperBandScheduler"),
        ("median", "MedianStoppingRule"),
    ],
)
def test_pruning_base_maps_to_rays_scheduler(base: str, expected: str, tmp_path: Path) -> None:
    from prl_tune.hosts.ray._runner import _base_scheduler

    path, _ = _study(tmp_path, epochs=9, extra="")
    spec = load_spec(path, overrides={"pruning.base": base, "pruning.min_resource": 2})
    scheduler = _base_scheduler(spec)
    assert type(scheduler).__name__ == expected
    if base == "asha":  # the study's resource settings, in epochs
        assert scheduler._max_t == 9 and scheduler._brackets[0]._rungs[-1][0] == 2


def test_a_wide_range_on_a_cluster_is_stored_truthfully(cluster: str, tmp_path: Path) -> None:
    path, storage = _study(
        tmp_path,
        n_trials=8,
        lr_max="[0.05, 40.0]",
        sampler="random",
        extra="max_concurrent = 2",
    )
    run = _cli("tune", str(path), "--backend", "ray", "--address", cluster, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    trials = _trials(storage, "ray")
    states = _states(trials)
    assert sum(states.values()) == 8 and "RUNNING" not in states, states
    assert states["PRUNED"] >= 1 and states["COMPLETE"] >= 1, states
    for trial in trials:
        assert trial.user_attrs["backend"] == "ray"
        assert 0 < trial.params["lr_max"] and "lr_min" in trial.user_attrs
        assert trial.user_attrs[OWNER_ATTR]["pid"] > 0
        if trial.state == TrialState.COMPLETE:
            # Every epoch's metric is an intermediate value; the value is the last epoch's.
            assert sorted(trial.intermediate_values) == [1, 2]
            assert trial.value == trial.intermediate_values[2]
            assert [h["epoch"] for h in trial.user_attrs["history"]] == [1, 2]
            assert trial.user_attrs["steps"] > 0 and "peak_loss" in trial.user_attrs
        elif trial.state == TrialState.PRUNED:
            assert trial.user_attrs["pruned_by"] in {"rules", "memory", "base"}
            assert trial.user_attrs["prune_reason"]
        else:
            pytest.fail(f"trial {trial.number} is {trial.state.name}: {trial.user_attrs}")
    by_rules = [t for t in trials if t.user_attrs.get("pruned_by") == "rules"]
    assert by_rules, "a range up to lr_max 40 has exploding trials"
    for trial in by_rules:
        assert trial.user_attrs["unstable"] is True
        assert 1 <= trial.user_attrs["diverged_at_step"] <= trial.user_attrs["steps"]
        assert trial.user_attrs["instability"] in {"non-finite", "exploded", "collapsed", "rising"}
        assert trial.user_attrs["lr_tail"] and trial.user_attrs["loss_tail"]
    for trial in trials:
        if trial.user_attrs.get("pruned_by") == "memory":
            assert trial.user_attrs["steps"] == 0 and not trial.intermediate_values

    # The terminal: one progress line per trial, the summary, where Ray's files are; none of
    # Ray's own banners, tables or tracebacks.
    lines = run.stderr.splitlines()
    assert sum(line.startswith("[") and "/8] trial" in line for line in lines) == 8
    assert "study 'ray': 8 trials" in run.stderr and "Ray logs: " in run.stderr
    for noise in ("Traceback", " INFO ", "Trial status", "WARNING"):
        assert noise not in run.stderr + run.stdout

    # The report reads the store the Ray backend wrote.
    report = _cli("report", "--storage", storage, cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "backend: ray (8)" in report.stdout
    by = Counter(t.user_attrs["pruned_by"] for t in trials if t.state == TrialState.PRUNED)
    expected = ", ".join(f"{k} {by[k]}" for k in ("base", "memory", "rules") if by[k])
    assert f"pruned by: {expected}" in report.stdout


def test_the_warm_start_places_the_first_trials_on_ray_too(cluster: str, tmp_path: Path) -> None:
    path, storage = _study(
        tmp_path,
        name="warm",
        n_trials=3,
        epochs=1,
        lr_max="[0.001, 1.0]",
        warm_start="range-test",
        extra="max_concurrent = 1",
    )
    run = _cli("tune", str(path), "--backend", "ray", "--address", cluster, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(study_name="warm", storage=storage)
    enqueued = study.user_attrs["prl_tune.warm_start"]
    first = sorted(study.trials, key=lambda t: t.number)[: len(enqueued)]
    assert [t.params["lr_max"] for t in first] == [p["lr_max"] for p in enqueued]
    assert all(t.user_attrs["warm_start"] is True for t in first)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_a_trial_whose_code_raises_is_fail_with_its_error(cluster: str, tmp_path: Path) -> None:
    path, storage = _study(
        tmp_path,
        name="crash",
        n_trials=3,
        epochs=1,
        task="fixtures.flaky_tasks:crash_every_other",
        task_params="",
        extra="max_concurrent = 1",
    )
    run = _cli("tune", str(path), "--backend", "ray", "--address", cluster, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(study_name="crash", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 3 and counted_trials(study) == 3  # a raising trial uses its budget
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and {t.state for t in trials} <= {TrialState.FAIL, TrialState.COMPLETE}
    for trial in failed:
        assert trial.user_attrs["error"].startswith("RuntimeError: simulated crash in call")
    assert "Traceback" not in run.stderr


def test_bad_ray_input_is_one_line_exit_2_and_nothing_stored(cluster: str, tmp_path: Path) -> None:
    path, _ = _study(tmp_path)
    cases = [
        (["--address", f"127.0.0.1:{free_port()}"], "--address: no Ray cluster answers"),
        (["--address", cluster, "--gpus-per-trial", "0.5"], "[ray] gpus_per_trial: must be 0"),
        (["--address", cluster, "--cpus-per-trial", "64"], "[ray] cpus_per_trial: a trial must"),
        (["--cpus-per-trial", "0"], "[ray] cpus_per_trial: must be a finite number > 0"),
    ]
    for args, message in cases:
        run = _cli("tune", str(path), "--backend", "ray", *args, cwd=tmp_path, timeout=60)
        assert run.returncode == 2, (args, run.stderr[-2000:])
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("prl-tune: error: "), run.stderr
        assert message in lines[0], (args, run.stderr)
        assert not (tmp_path / "store.db").exists(), args

    # Without Ray: the extra to install is named.
    code = (
        "import sys; sys.modules['ray'] = None; from prl_tune.cli import main; "
        f"sys.exit(main(['tune', {str(path)!r}, '--backend', 'ray']))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "pip install 'prl_tune[ray]'" in run.stderr
    assert not (tmp_path / "store.db").exists()


def test_a_study_moves_between_backends_and_keeps_its_memory(cluster: str, tmp_path: Path) -> None:
    path, storage = _study(
        tmp_path,
        name="both",
        n_trials=3,
        lr_max="[3.0, 60.0]",
        sampler="random",
        extra="max_concurrent = 1",
    )
    first = _cli("tune", str(path), cwd=tmp_path)  # the Optuna backend
    assert first.returncode == 0, first.stderr[-3000:]
    ray = _cli(
        "tune", str(path), "--backend", "ray", "--address", cluster, "--n-trials", "7", cwd=tmp_path
    )
    assert ray.returncode == 0, ray.stderr[-3000:]
    assert "resuming study 'both': 3/7 trials done" in ray.stderr
    last = _cli("tune", str(path), "--n-trials", "8", cwd=tmp_path)
    assert last.returncode == 0, last.stderr[-3000:]

    trials = _trials(storage, "both")
    assert len(trials) == 8 and "RUNNING" not in _states(trials)
    backends = [t.user_attrs.get("backend") for t in trials]
    assert backends == ["optuna"] * 3 + ["ray"] * 4 + ["optuna"]
    # A resumed run does not propose the points of the run before.
    assert len({t.params["lr_max"] for t in trials}) == 8
    # Ranges learned unstable on one backend block dominated ones on the other.
    unstable = [t for t in trials if t.user_attrs.get("pruned_by") == "rules"]
    blocked = [t for t in trials if t.user_attrs.get("pruned_by") == "memory"]
    assert unstable and blocked, [(t.number, t.user_attrs.get("pruned_by")) for t in trials]
    across = 0
    for trial in blocked:
        assert trial.user_attrs["steps"] == 0
        blockers = [
            u
            for u in unstable
            if u.number < trial.number
            and u.user_attrs["lr_min"] <= trial.user_attrs["lr_min"]
            and u.params["lr_max"] <= trial.params["lr_max"]
        ]
        assert blockers, trial.number
        across += any(u.user_attrs["backend"] != trial.user_attrs["backend"] for u in blockers)
    assert across, "no trial was blocked by a range learned on the other backend"

    # The configuration check holds on both backends: another study under the same name.
    for backend in ("ray", "optuna"):
        other = _cli(
            "tune", str(path), "--backend", backend, "--address", cluster, "--set",
            "task.epochs=3", cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert other.returncode == 2, other.stderr[-2000:]
        assert "[task] epochs: stored 2, now 3" in other.stderr
    assert len(_trials(storage, "both")) == 8


def test_a_killed_trial_worker_resumes_from_its_checkpoint_bit_exactly(
    cluster: str, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    params = f'params = {{ model = "mlp", marker = "{marker}", die_at = 2 }}'
    path, storage = _study(
        tmp_path,
        name="kill",
        n_trials=1,
        epochs=3,
        lr_max="0.3",
        task="fixtures.ray_faults:digits_killed_once",
        task_params=params,
        extra="max_failures = 1",
    )
    run = _cli("tune", str(path), "--backend", "ray", "--address", cluster, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert marker.exists(), "the trial's worker was not killed"
    killed_pid = int(marker.read_text())
    (trial,) = _trials(storage, "kill")
    assert trial.state == TrialState.COMPLETE, trial.user_attrs
    stored = trial.user_attrs["history"]
    assert [h["epoch"] for h in stored] == [1, 2, 3]

    # The same trial, uninterrupted, in this process with the trial's one torch thread.
    spec = load_spec(path, overrides={"task.name": "digits", "task.params": {"model": "mlp"}})
    expected = _uninterrupted(spec, trial.params)
    for key in ("lr_min", "lr_mean", "lr_max", "train_loss", "val_loss", "val_accuracy"):
        assert [h[key] for h in stored] == [getattr(m, key) for m in expected.history], key
    assert trial.user_attrs["steps"] == expected.steps
    assert killed_pid != os.getpid()


def _uninterrupted(spec: StudySpec, params: dict[str, Any]) -> TrainResult:
    """The trial with ``params``, run in this process with one torch thread, as a trial is."""
    config = spec.space.decode(params)  # type: ignore[union-attr]
    with cpu_threads(1):
        return train_trial(spec, config)


def _slow_study(tmp_path: Path, name: str) -> tuple[Path, str]:
    return _study(
        tmp_path,
        name=name,
        n_trials=3,
        epochs=3,
        task="fixtures.ray_faults:digits_slow",
        task_params='params = { model = "mlp", pause = 1.0 }',
        extra="max_concurrent = 1",
    )


def _finish_and_check(
    path: Path, cluster: str, storage: str, name: str
) -> list[optuna.trial.FrozenTrial]:
    """Re-run the command: the study completes its budget and nothing is left RUNNING."""
    rerun = _cli("tune", str(path), "--backend", "ray", "--address", cluster, cwd=path.parent)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=storage)
    assert "RUNNING" not in _states(study.get_trials())
    assert counted_trials(study) == 3
    return [t for t in study.get_trials() if "fail_reason" in t.user_attrs]


def test_a_killed_driver_leaves_no_running_trial_and_its_trial_resumes(
    cluster: str, tmp_path: Path
) -> None:
    path, storage = _slow_study(tmp_path, "driver")
    args = ["tune", str(path), "--backend", "ray", "--address", cluster]
    driver, running, _ = signal_when_a_trial_runs(
        args,
        cwd=tmp_path,
        storage=storage,
        name="driver",
        signum=signal.SIGKILL,
        ready=lambda t: "ray_checkpoints" in t.user_attrs,
    )
    assert driver.returncode == -signal.SIGKILL
    (orphan,) = _finish_and_check(path, cluster, storage, "driver")
    assert orphan.number == running.number and orphan.state == TrialState.FAIL
    assert f"pid {driver.pid}" in orphan.user_attrs["fail_reason"]
    assert json.dumps(orphan.user_attrs[OWNER_ATTR])

    # The orphan continued from its checkpoint in a new trial with its parameters: the epochs
    # before the checkpoint are carried over, the rest trained, bit for bit the uninterrupted run.
    (resumed,) = [
        t for t in _trials(storage, "driver") if t.user_attrs.get("resumed_from") == orphan.number
    ]
    assert resumed.params == orphan.params and resumed.state == TrialState.COMPLETE
    assert sorted(resumed.intermediate_values) == [1, 2, 3]
    assert orphan.intermediate_values and sorted(orphan.intermediate_values)[-1] < 3
    for epoch, value in orphan.intermediate_values.items():
        assert resumed.intermediate_values[epoch] == value
    spec = load_spec(path, overrides={"task.name": "digits", "task.params": {"model": "mlp"}})
    expected = _uninterrupted(spec, resumed.params)
    stored = resumed.user_attrs["history"]
    for key in ("lr_min", "lr_mean", "lr_max", "val_loss", "val_accuracy"):
        assert [h[key] for h in stored] == [getattr(m, key) for m in expected.history], key


def test_ctrl_c_of_the_driver_fails_its_running_trials_at_once(
    cluster: str, tmp_path: Path
) -> None:
    path, storage = _slow_study(tmp_path, "ctrl-c")
    args = ["tune", str(path), "--backend", "ray", "--address", cluster]
    driver, running, err = signal_when_a_trial_runs(
        args, cwd=tmp_path, storage=storage, name="ctrl-c", signum=signal.SIGINT
    )
    assert driver.returncode == 130, err[-3000:]
    assert "prl-tune: interrupted" in err and "Traceback" not in err
    trials = {t.number: t for t in _trials(storage, "ctrl-c")}
    assert "RUNNING" not in _states(list(trials.values()))  # before any re-run
    assert trials[running.number].state == TrialState.FAIL
    assert "driver stopped" in trials[running.number].user_attrs["fail_reason"]
    (interrupted,) = _finish_and_check(path, cluster, storage, "ctrl-c")
    assert interrupted.number == running.number


def test_the_driver_hands_each_trial_the_dead_rules_evidence(tmp_path: Path) -> None:
    """No cluster needed: the searcher's config for a new trial says whether a less aggressive
    range of the study learned within ``dead_window`` steps (the trainable pops the key)."""
    from prl_tune.hosts.ray import InstabilityScheduler
    from prl_tune.hosts.ray._runner import _SpecSearcher
    from prl_tune.stability import EVIDENCE_KEY

    path, storage = _study(tmp_path, lr_max="[0.001, 10.0]")
    spec = load_spec(path)
    study = optuna.create_study(storage=storage, study_name="ray", direction="maximize")
    learned = study.ask({"lr_max": optuna.distributions.FloatDistribution(1e-3, 10, log=True)})
    attrs = {"lr_min": 0.05, "lr_max": 0.1, "learned_at": 20, "outcome": "stable"}
    for key, value in attrs.items():
        learned.set_user_attr(key, value)
    study.tell(learned, 0.95)
    scheduler = InstabilityScheduler(space=spec.space, rules=spec.rules)
    searcher = _SpecSearcher(spec, study, scheduler, None, None)
    evidence = {}
    for trial_id, lr_max in (("above", 1.0), ("below", 0.01)):
        study.enqueue_trial({"lr_max": lr_max, "lr_min_ratio": 0.9})
        config = searcher.suggest(trial_id)
        assert config is not None
        evidence[trial_id] = config[EVIDENCE_KEY]
    assert evidence == {"above": True, "below": False}
