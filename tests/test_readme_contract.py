"""The README's two set-up commands: CI runs the test command verbatim; the main job works."""

from __future__ import annotations

import re
from pathlib import Path

import optuna

from prl_tune.cli import main

ROOT = Path(__file__).parents[1]


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quickstart = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quickstart", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", quickstart.split("\n## ", 1)[0], re.S)
    assert len(blocks) == 2
    main_job, test_command = (b.strip() for b in blocks)
    assert "prl-tune tune studies/quickstart.toml" in main_job
    assert "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_quickstart_as_shipped_reaches_095_validation_accuracy(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'prl_tune.db'}"
    assert main(["tune", str(ROOT / "studies" / "quickstart.toml"), "--storage", storage]) == 0
    study = optuna.load_study(study_name="quickstart", storage=storage)
    assert len(study.trials) == 30
    assert study.best_value >= 0.95
    assert study.best_trial.user_attrs["lr_min"] <= study.best_trial.user_attrs["lr_max"]
