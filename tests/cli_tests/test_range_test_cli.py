"""``prl-tune range-test`` and studies whose lr_max range comes from the range test."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from prl_tune.cli import main
from prl_tune.lr_finder import RangeTestResult
from prl_tune.store import RANGE_TEST_ATTR


def test_range_test_command_prints_plots_and_records(write_study, tmp_path, capsys) -> None:
    path, storage = write_study()
    plot = tmp_path / "curve.png"
    assert main(["range-test", str(path), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "suggested lr_max:" in out and "suggested lr_min:" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = optuna.load_study(study_name="t", storage=storage).user_attrs[RANGE_TEST_ATTR]
    result = RangeTestResult.from_dict(record["result"])
    assert record["lr_max"][1] == pytest.approx(result.suggested_lr_max)
    assert len(result.lrs) == len(result.losses) >= 10


def test_study_with_range_test_bounds_searches_below_the_suggestion(write_study, capsys) -> None:
    path, storage = write_study(n_trials=3, lr_max='"range-test"')
    assert main(["tune", str(path)]) == 0
    first = capsys.readouterr().err
    study = optuna.load_study(study_name="t", storage=storage)
    record = study.user_attrs[RANGE_TEST_ATTR]
    low, high = record["lr_max"]
    suggested = RangeTestResult.from_dict(record["result"]).suggested_lr_max
    assert (low, high) == (suggested / 3.0, suggested)  # the default range_test_span
    assert f"lr_max range from the LR range test: [{low:.4g}, {high:.4g}]" in first
    for trial in study.trials:
        assert low <= trial.user_attrs["lr_max"] <= high
    # resuming reuses the stored test: it runs once per study, not once per command
    assert main(["tune", str(path), "--n-trials", "4"]) == 0
    second = capsys.readouterr().err
    runs = [line for line in (first + second).splitlines() if "running the LR range test" in line]
    assert runs == ["running the LR range test on 'digits' (once per study) ..."]
    assert optuna.load_study(study_name="t", storage=storage).user_attrs[RANGE_TEST_ATTR] == record


def test_range_test_with_a_bad_study_file_exits_2(write_study, tmp_path: Path) -> None:
    path, storage = write_study()
    path.write_text(path.read_text().replace("n_trials = 2", "n_trials = -1"), encoding="utf-8")
    assert main(["range-test", str(path)]) == 2
    assert not Path(storage.removeprefix("sqlite:///")).exists()


def test_lr_min_range_above_the_range_test_suggestion_exits_2(write_study, capsys) -> None:
    path, storage = write_study(lr_max='"range-test"', space_extra="lr_min = [5.0, 10.0]")
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("prl-tune: error: [space] lr_max: must not reach below lr_min")
    assert "from the LR range test" in err
    study = optuna.load_study(study_name="t", storage=storage)
    assert study.trials == []  # no trial ran with an impossible space
