"""``benchmarks/compute_to_target.py``: steps to the target on hand-made curves, and one tiny
real run of two arms."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import compute_to_target as ctt
import pytest
from compute_to_target import ArmSummary, Point, Run, TrialRecord


def _trial(
    number: int,
    steps: int,
    value: float | None = None,
    *,
    state: str | None = None,
    stopped_by: str | None = None,
    unstable: bool = False,
) -> TrialRecord:
    return TrialRecord(
        number=number,
        state=state or ("COMPLETE" if value is not None else "PRUNED"),
        value=value,
        steps=steps,
        seconds=float(number + 1),
        stopped_by=stopped_by,
        lr_max=0.1,
        unstable=unstable,
    )


#: What a --json file records of a tiny run: two 1-epoch trials on digits_cnn.
_SETTINGS = {
    "optimizer": "momentum",
    "trials": 2,
    "epochs": 1,
    "families": {"digits_cnn": {"batch_size": 32, "steps_per_epoch": 45}},
}


def _run(*trials: TrialRecord, arm: str = "optuna-tpe", seed: int = 0, setup: int = 0) -> Run:
    return Run("digits_cnn", arm, seed, setup, 10.0, trials)


def test_pruned_failed_and_memory_pruned_trials_count_their_steps() -> None:
    run = _run(
        _trial(0, 100, stopped_by="base"),
        _trial(1, 0, stopped_by="memory"),
        _trial(2, 30, state="FAIL"),
        _trial(3, 200, 0.5),
        _trial(4, 50, stopped_by="rules"),
        _trial(5, 200, 0.75),
    )
    assert ctt.curve(run) == [
        Point(100, 1.0, -math.inf),
        Point(100, 2.0, -math.inf),
        Point(130, 3.0, -math.inf),
        Point(330, 4.0, 0.5),
        Point(380, 5.0, 0.5),
        Point(580, 6.0, 0.75),
    ]
    assert ctt.reached(ctt.curve(run), 0.5) == Point(330, 4.0, 0.5)
    assert ctt.reached(ctt.curve(run), 0.6) == Point(580, 6.0, 0.75)


def test_setup_steps_come_before_the_first_trial() -> None:
    run = _run(_trial(0, 200, 0.75), setup=100)
    assert ctt.reached(ctt.curve(run), 0.75) == Point(300, 1.0, 0.75)


def test_unstable_steps_before_the_target_stop_at_the_trial_that_reached_it() -> None:
    run = _run(
        _trial(0, 40, stopped_by="rules", unstable=True),
        _trial(1, 100, 0.6),  # reaches 0.5
        _trial(2, 30, stopped_by="rules", unstable=True),
    )
    assert ctt.unstable_until(run, 0.5) == 40
    assert ctt.unstable_until(run, 0.7) == 70  # never reached: every unstable trial
    assert ArmSummary.of([run, run], target=0.5).unstable_before == 40


def test_a_value_equal_to_the_target_reaches_it_and_a_later_tie_does_not_move_it() -> None:
    run = _run(_trial(0, 10, 0.5), _trial(1, 10, 0.75), _trial(2, 10, 0.75))
    assert ctt.reached(ctt.curve(run), 0.75) == Point(20, 2.0, 0.75)


def test_a_pruned_trial_value_never_counts_and_no_completed_trial_never_reaches() -> None:
    run = _run(_trial(0, 10, stopped_by="base"), _trial(1, 10, math.nan, state="COMPLETE"))
    assert ctt.reached(ctt.curve(run), -math.inf) is None
    assert ctt.final_best(run) == -math.inf


def test_not_reached_counts_as_infinite_in_the_median_and_the_worst() -> None:
    runs = [
        _run(_trial(0, 100, 0.75), seed=0),
        _run(_trial(0, 100, 0.5), seed=1),
        _run(_trial(0, 100, 0.5), seed=2),
    ]
    summary = ArmSummary.of(runs, target=0.75)
    assert (summary.reached, summary.seeds) == (1, 3)
    assert math.isinf(summary.median_steps) and math.isinf(summary.worst_steps)
    one_miss = ArmSummary.of([runs[0], _run(_trial(0, 300, 0.75), seed=3), runs[1]], 0.75)
    assert (one_miss.median_steps, one_miss.worst_steps) == (300, math.inf)


def test_the_summary_counts_unstable_steps_and_stops_per_seed() -> None:
    runs = [
        _run(_trial(0, 40, stopped_by="rules", unstable=True), _trial(1, 0, stopped_by="memory")),
        _run(_trial(0, 60, stopped_by="non-finite", unstable=True), seed=1),
    ]
    summary = ArmSummary.of(runs, target=0.5)
    assert summary.unstable_steps == 50
    assert summary.unstable_before == 50  # neither reached the target: all of them count
    assert summary.stops == {"memory": 0.5, "rules": 0.5, "non-finite": 0.5, "base": 0.0}
    assert math.isnan(summary.mean_best)


def test_the_target_is_one_point_below_the_best_of_every_arm_and_seed() -> None:
    runs = [_run(_trial(0, 1, 0.5)), _run(_trial(0, 1, 0.875), arm="prl_tune-defaults")]
    assert ctt.family_target(runs) == pytest.approx(0.865)


def test_the_ratio_divides_by_the_plain_optuna_arm_that_reached_the_target_first() -> None:
    runs = [
        _run(_trial(0, 400, 0.75), arm="optuna-tpe"),
        _run(_trial(0, 100, 0.25), _trial(1, 200, 0.75), arm="optuna-tpe+median"),
        _run(_trial(0, 150, 0.75), arm="prl_tune-defaults"),
        _run(_trial(0, 100, 0.25), arm="ray-asha-random"),
    ]
    summaries = {r.arm: ArmSummary.of([r], 0.75) for r in runs}
    assert ctt.best_plain(summaries) == "optuna-tpe+median"
    assert ctt.ratio(summaries["prl_tune-defaults"].median_steps, 300) == 0.5
    assert math.isinf(ctt.ratio(summaries["ray-asha-random"].median_steps, 300))
    assert math.isnan(ctt.ratio(300, math.inf))
    text = ctt.report(runs, _SETTINGS)
    assert "| optuna-tpe+median (best plain) | 1/1 | 300 | 300 |" in text
    assert "| ray-asha-random | 0/1 | not reached | not reached |" in text
    assert "defaults / best plain Optuna (optuna-tpe+median) = 0.50 (target <= 0.5)" in text


def test_saved_runs_print_the_same_tables(tmp_path: Path) -> None:
    runs = [_run(_trial(0, 400, 0.75)), _run(_trial(0, 40, 0.75), arm="prl_tune-defaults")]
    settings = {
        "optimizer": "momentum",
        "trials": 1,
        "epochs": 1,
        "families": {"digits_cnn": {"batch_size": 32, "steps_per_epoch": 45}},
    }
    ctt.save(tmp_path / "runs.json", runs, settings)
    loaded, loaded_settings = ctt.load([tmp_path / "runs.json"])
    assert loaded == runs
    assert ctt.report(loaded, loaded_settings) == ctt.report(runs, settings)


@pytest.mark.slow
def test_a_tiny_real_run_of_two_arms(tmp_path: Path) -> None:
    args = argparse.Namespace(trials=2, epochs=1, optimizer="momentum")
    runs = []
    for arm in ("optuna-tpe", "prl_tune-defaults"):
        folder = tmp_path / arm
        folder.mkdir()
        runs.append(ctt.run_one("digits_cnn", arm, 0, args, folder))
    for run in runs:
        assert len(run.trials) == 2
        assert all(0 <= t.steps <= 45 for t in run.trials)
        assert [t.seconds for t in run.trials] == sorted(t.seconds for t in run.trials)
        for trial in run.trials:
            if trial.state == "COMPLETE":
                assert trial.last_accuracy == trial.value
    assert runs[0].setup_steps == 0  # the plain arm runs no range test
    for run in runs:  # a range test's steps (a warm start's) come before the first trial
        assert ctt.curve(run)[0].steps == run.setup_steps + run.trials[0].steps
    text = ctt.report(runs, _SETTINGS)
    assert "| optuna-tpe (best plain) |" in text and "| prl_tune-defaults |" in text


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adamw"])
def test_every_arm_is_a_valid_study_for_every_optimizer(tmp_path: Path, optimizer: str) -> None:
    from prl_tune.config import StudySpec
    from prl_tune.stability import StabilityRules

    for name, arm in ctt.ARMS.items():
        data = ctt.study_dict(
            arm,
            family="digits_mlp",
            seed=3,
            trials=4,
            epochs=2,
            optimizer=optimizer,
            folder=tmp_path,
        )
        spec = StudySpec.from_dict(data)
        assert spec.optimizer.name == ("adamw" if optimizer == "adamw" else "sgd"), name
        assert spec.seed == 3 and spec.n_trials == 4, name
        plain = name.startswith(("optuna-", "ray-"))
        assert (spec.warm_start == "none") == (plain or name == "prl_tune-rules+memory"), name
        if name.startswith("prl_tune-defaults+"):  # the defaults, and a base pruner's rungs
            assert spec.pruning.base == name.split("+")[1], name
            assert spec.rules == StabilityRules() and spec.pruning.memory == "dominance", name
