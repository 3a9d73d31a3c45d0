"""``prl-tune tune`` on real SQLite stores with real (tiny) training runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.cli import main

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trials(storage: str, name: str = "t") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).trials


def test_tune_runs_a_study_and_stores_both_bounds(write_study, capsys) -> None:
    path, storage = write_study(n_trials=3)
    assert main(["tune", str(path)]) == 0
    trials = _trials(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        assert 0 <= trial.user_attrs["lr_min"] <= trial.user_attrs["lr_max"]
        assert 0.01 <= trial.user_attrs["lr_max"] <= 0.5
        assert len(trial.intermediate_values) == 1
        assert trial.user_attrs["history"][0]["val_accuracy"] == pytest.approx(trial.value)
    err = capsys.readouterr().err
    assert "[3/3]" in err and "ETA" in err
    assert "best lr_min" in err and "best lr_max" in err and "COMPLETE 3" in err


def test_rerun_resumes_to_the_total_budget(write_study) -> None:
    path, storage = write_study(n_trials=2)
    assert main(["tune", str(path), "--quiet"]) == 0
    first = [(t.number, t.params) for t in _trials(storage)]
    assert main(["tune", str(path), "--quiet", "--n-trials", "4"]) == 0
    trials = _trials(storage)
    assert len(trials) == 4
    assert [(t.number, t.params) for t in trials[:2]] == first
    assert main(["tune", str(path), "--quiet", "--n-trials", "4"]) == 0
    assert len(_trials(storage)) == 4
    assert len(optuna.study.get_all_study_summaries(storage)) == 1


def test_same_name_with_another_configuration_is_refused(write_study, capsys) -> None:
    path, storage = write_study(n_trials=1)
    assert main(["tune", str(path), "--quiet"]) == 0
    code = main(["tune", str(path), "--set", "task.epochs=2"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("prl-tune: error: [study] name:")
    assert "[task] epochs: stored 1, now 2" in err[-1]
    assert len(_trials(storage)) == 1


def test_workers_share_one_sqlite_file_without_lock_errors(write_study) -> None:
    path, storage = write_study(n_trials=8, study_extra="workers = 4")
    assert main(["tune", str(path), "--quiet"]) == 0
    trials = _trials(storage)
    assert len(trials) == 8  # exactly the budget, not one per worker more
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 8}
    assert not any("error" in t.user_attrs for t in trials)
    # four workers propose different points (per-worker sampler seeds)
    assert len({t.params["lr_max"] for t in trials}) == 8


def test_crashing_user_task_fails_its_trial_and_the_study_goes_on(write_study) -> None:
    path, storage = write_study(
        n_trials=4, task="fixtures.flaky_tasks:crash_every_other", task_params=""
    )
    assert main(["tune", str(path), "--quiet"]) == 0
    trials = _trials(storage)
    states = Counter(t.state for t in trials)
    assert states == {TrialState.FAIL: 2, TrialState.COMPLETE: 2}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert all("RuntimeError: simulated crash" in t.user_attrs["error"] for t in failed)


def test_diverging_trials_are_pruned_with_reason_and_step(write_study) -> None:
    path, storage = write_study(n_trials=2, lr_max="[1e5, 1e6]")
    assert main(["tune", str(path), "--quiet"]) == 0
    trials = _trials(storage)
    first = trials[0]
    assert first.state == TrialState.PRUNED
    assert first.user_attrs["pruned_by"] == "rules"
    assert first.user_attrs["instability"] in ("non-finite", "exploded")
    # At lr 1e5 the loss blows up at once; the loop's early checks (steps 1, 2, 4) stop it there.
    assert 1 <= first.user_attrs["diverged_at_step"] <= first.user_attrs["steps"] <= 4
    assert first.constraints == {"unstable": 1.0}  # the sampler sees the region as infeasible
    # The second range is no less aggressive in lr_max; it either diverged too or was skipped.
    assert trials[1].state == TrialState.PRUNED and trials[1].user_attrs["unstable"]


def test_memory_skips_ranges_dominating_an_unstable_one(write_study) -> None:
    # One fixed, diverging range: the first trial diverges, the memory skips the rest.
    path, storage = write_study(n_trials=4, lr_max="1e5", space_extra="lr_min_ratio = 1.0")
    assert main(["tune", str(path), "--quiet"]) == 0
    first, *rest = _trials(storage)
    assert first.user_attrs["pruned_by"] == "rules"
    assert first.user_attrs["steps"] > 0
    for trial in rest:
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["pruned_by"] == "memory"
        assert trial.user_attrs["steps"] == 0
        assert "unstable trial 0" in trial.user_attrs["prune_reason"]
        assert trial.constraints == {"unstable": 1.0}


def test_summary_states_the_learned_stability_boundary(write_study, capsys) -> None:
    path, _ = write_study(n_trials=6, lr_max="[0.01, 1e4]", study_extra='sampler = "random"')
    assert main(["tune", str(path)]) == 0
    err = capsys.readouterr().err
    assert "pruned by: " in err
    assert "stability boundary (scheduler=plrs): stable up to lr_max" in err


def test_equal_allocation_gives_every_scheduler_the_same_trials(write_study) -> None:
    path, storage = write_study(
        n_trials=12,
        schedulers='["plrs", "cosine", "onecycle", "knee", "multistep", "constant"]',
    )
    assert main(["tune", str(path), "--quiet"]) == 0
    counts = Counter(t.user_attrs["scheduler"] for t in _trials(storage))
    assert counts == dict.fromkeys(
        ["plrs", "cosine", "onecycle", "knee", "multistep", "constant"], 2
    )


def test_standard_optuna_cli_lists_trials_with_both_bounds(write_study) -> None:
    path, storage = write_study(n_trials=2)
    assert main(["tune", str(path), "--quiet"]) == 0
    optuna_cli = shutil.which("optuna", path=str(Path(sys.executable).parent)) or "optuna"
    out = subprocess.run(
        [optuna_cli, "trials", "--study-name", "t", "--storage", storage, "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out)
    assert len(rows) == 2
    for row in rows:
        assert 0 <= row["user_attrs"]["lr_min"] <= row["user_attrs"]["lr_max"]
        assert row["params"]["lr_max"] == pytest.approx(row["user_attrs"]["lr_max"])


def test_summary_command_reads_the_store(write_study, capsys) -> None:
    path, storage = write_study(n_trials=1)
    assert main(["tune", str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["summary", "--storage", storage, "--study", "t"]) == 0
    assert "best lr_max" in capsys.readouterr().out
    assert main(["summary", "--storage", storage, "--study", "nope"]) == 2


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prl_tune.cli", *args], capture_output=True, text=True
    )


BAD = [
    ("n_trials = 2", "n_trails = 2", "[study] n_trails: unknown key"),
    ('name = "digits"', 'name = "imagenet"', "[task] name:"),
    ('name = "sgd"', 'name = "lion"', "[optimizer] name:"),
    ("lr_max = [0.01, 0.5]", "lr_max = [0.5, 0.01]", "[space] lr_max:"),
    ("lr_max = [0.01, 0.5]", "lr_max = [-0.5, 0.01]", "[space] lr_max:"),
    ("lr_max = [0.01, 0.5]", "lr_max = [0.01, 0.5]\nlr_min = [0.1, 0.2]", "[space] lr_max:"),
    ('schedulers = ["plrs"]', 'schedulers = ["plrs", "cyclic"]', "[space] schedulers:"),
    ("n_trials = 2", "n_trials = 0", "[study] n_trials: must be >= 1 but got 0"),
    ("epochs = 1", 'epochs = "1"', "[task] epochs: must be an integer"),
    ("seed = 0", 'seed = 0\n[pruning]\nbase = "successive"', "[pruning] base:"),
]


@pytest.mark.parametrize(("old", "new", "fragment"), BAD)
def test_bad_study_files_exit_2_and_create_nothing(write_study, old, new, fragment) -> None:
    path, storage = write_study()
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _run_cli("tune", str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prl-tune: error: ")
    assert fragment in lines[0]
    assert not Path(storage.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("sqlite:////nonexistent-dir/x.db", "folder"),
        ("postgresql://nobody@127.0.0.1:1/none", "storage: the database server must be reachable"),
        ("not a url", "storage: must be a SQLAlchemy URL"),
        ("sqlite://", "must name a file"),
    ],
)
def test_unusable_storage_exits_2(write_study, url: str, fragment: str) -> None:
    path, storage = write_study()
    result = _run_cli("tune", str(path), "--storage", url)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not Path(storage.removeprefix("sqlite:///")).exists()


def test_cli_argument_errors_exit_2(write_study) -> None:
    path, _ = write_study()
    result = _run_cli("tune", str(path), "--n-trials", "0")
    assert result.returncode == 2
    assert "--n-trials: must be an integer >= 1 but got 0" in result.stderr
    result = _run_cli("tune", str(path), "--set", "study.name")
    assert result.returncode == 2 and "--set: must be SECTION.KEY=VALUE" in result.stderr
