"""Every study file and every example runs as shipped (with a tiny budget), so none can rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from fixtures.cifar_files import write_cifar100
from optuna.trial import TrialState

from prl_tune.cli import main

ROOT = Path(__file__).parents[1]
STUDIES = sorted((ROOT / "studies").glob("*.toml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_the_repo_ships_studies_and_examples() -> None:
    names = {p.name for p in STUDIES} | {p.name for p in EXAMPLES}
    assert {"quickstart.toml", "scheduler-comparison.toml"} <= names
    assert {"drop_in_pytorch_loop.py", "optuna_objective.py"} <= names


def _data_args(study_file: Path, tmp_path: Path) -> list[str]:
    """A study whose task reads files runs on a tiny folder of them in the real format, written
    here: 200 CIFAR-100 training images, half of them validating (one per class)."""
    if study_file.name != "cifar100-resnet110.toml":
        return []
    root = write_cifar100(tmp_path / "data")
    return ["--set", f"task.params.root='{root}'", "--set", "task.params.val_fraction=0.5"]


@pytest.mark.parametrize("study_file", STUDIES, ids=lambda p: p.name)
def test_study_file_runs(study_file: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(
        [
            "tune",
            str(study_file),
            "--storage",
            storage,
            "--n-trials",
            "2",
            "--quiet",
            "--set",
            "task.epochs=1",
            *_data_args(study_file, tmp_path),
        ]
    )
    assert code == 0
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert len(study.trials) == 2
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


ARGS = {
    "drop_in_pytorch_loop.py": ["--epochs", "2"],
    "optuna_objective.py": ["--n-trials", "3", "--epochs", "1"],
    "ray_tune_asha.py": ["--samples", "3", "--epochs", "1"],
}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    args = ARGS.get(example.name)
    assert args is not None, f"add tiny-budget arguments for {example.name} to ARGS"
    if example.name == "optuna_objective.py":
        args = [*args, "--storage", f"sqlite:///{tmp_path / 'ex.db'}"]
    result = subprocess.run(
        [sys.executable, str(example), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout
