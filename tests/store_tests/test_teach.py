"""What a finished trial teaches the memory (``store.teach``), on a real SQLite study."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from prl_tune.stability import StabilityRules, UnstableRangeMemory, range_context
from prl_tune.store import (
    CONSTRAINT_KEY,
    stability_boundary,
    study_records,
    teach,
    trial_attrs,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHANCE = math.log(10)
RULES = StabilityRules()
CONTEXT = range_context("plrs", {})  # trials that searched nothing else


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 't.db'}", study_name="t", direction="maximize"
    )


def _history(*train_losses: float) -> list[dict[str, Any]]:
    return [{"epoch": k, "train_loss": v} for k, v in enumerate(train_losses, 1)]


def _run(
    study: optuna.Study,
    lr_max: float,
    history: list[dict[str, Any]],
    *,
    learned_at: int | None = None,
    peak: float = 2.5,
    value: float = 0.5,
    steps: int = 100,
) -> optuna.trial.FrozenTrial:
    """One trial that ran to the end: its range, its progress, what it teaches, its value."""
    trial = study.ask()
    trial.set_user_attr("lr_min", lr_max / 2)
    trial.set_user_attr("lr_max", lr_max)
    trial.set_user_attr("steps", steps)
    progress: dict[str, Any] = {"initial_loss": 2.4, "peak_loss": peak, "chance_loss": CHANCE}
    if learned_at is not None:
        progress["learned_at"] = learned_at
    for key, item in progress.items():
        trial.set_user_attr(key, item)
    records = study_records(study, exclude=trial.number)
    teach(trial, history, progress, RULES, records)
    study.tell(trial, value)
    return study.trials[trial.number]


def test_a_run_that_fell_back_to_chance_is_unstable_and_infeasible(tmp_path: Path) -> None:
    study = _study(tmp_path)
    frozen = _run(study, 1.0, _history(1.2, 2.31, 2.30), learned_at=9, value=0.1)
    attrs = trial_attrs(study)[frozen.number]
    assert attrs["outcome"] == "unstable"
    assert attrs["instability"] == "collapsed"
    assert attrs["unstable"] is True
    assert attrs["unstable_reason"].startswith("collapsed: ended at the chance level 2.303")
    assert frozen.state == TrialState.COMPLETE
    assert frozen.constraints == {CONSTRAINT_KEY: 1.0}  # infeasible: TPE ranks it last
    # The memory learned it: a range at least as aggressive is blocked.
    memory = UnstableRangeMemory("dominance", study_records(study))
    blocker = memory.blocker(0.6, 1.5, CONTEXT)
    assert blocker is not None and blocker.trial == frozen.number


def test_a_loss_several_times_too_high_for_an_epoch_is_sustained(tmp_path: Path) -> None:
    study = _study(tmp_path)
    frozen = _run(study, 3.0, _history(9.0, 1.0), learned_at=30, peak=12.0)
    assert trial_attrs(study)[frozen.number]["instability"] == "sustained"


def test_a_flat_run_is_dead_above_a_range_that_learned_and_slow_below_it(tmp_path: Path) -> None:
    study = _study(tmp_path)
    learned = _run(study, 0.1, _history(1.0, 0.3), learned_at=12, value=0.95)
    dead = _run(study, 1.0, _history(2.33, 2.35), value=0.1)
    slow = _run(study, 0.01, _history(2.31, 2.29), value=0.2)
    attrs = trial_attrs(study)
    assert attrs[learned.number]["outcome"] == "stable"
    assert (attrs[dead.number]["outcome"], attrs[dead.number]["instability"]) == (
        "unstable",
        "dead",
    )
    assert dead.constraints == {CONSTRAINT_KEY: 1.0}
    assert attrs[slow.number]["outcome"] == "flat"  # too slow: never taught as unstable
    assert "unstable" not in attrs[slow.number]
    assert slow.constraints == {}
    memory = UnstableRangeMemory("dominance", study_records(study))
    by_trial = {r.trial: r for r in memory.records}
    assert memory.is_slow(by_trial[slow.number])
    assert not memory.is_unstable(by_trial[slow.number])
    # The boundary comes from this classification: the slow run is no instability.
    assert list(stability_boundary(study).values()) == [(0.1, 1.0)]


def test_a_flat_run_becomes_dead_once_a_gentler_range_learns(tmp_path: Path) -> None:
    study = _study(tmp_path)
    flat = _run(study, 1.0, _history(2.33, 2.35), value=0.1)
    assert trial_attrs(study)[flat.number]["outcome"] == "flat"  # nothing known yet
    assert list(stability_boundary(study).values()) == [(1.0, None)]
    _run(study, 0.1, _history(1.0, 0.3), learned_at=12, value=0.95)
    memory = UnstableRangeMemory("dominance", study_records(study))
    assert memory.is_unstable(next(r for r in memory.records if r.trial == flat.number))
    assert list(stability_boundary(study).values()) == [(0.1, 1.0)]
    assert memory.blocker(0.6, 2.0, CONTEXT) is not None


def test_known_to_learn_needs_a_gentler_range_that_learned_within_the_window(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path)
    _run(study, 0.1, _history(1.0, 0.3), learned_at=40, value=0.95)
    memory = UnstableRangeMemory("dominance", study_records(study))
    assert memory.known_to_learn(0.5, 1.0, CONTEXT, within=48)
    assert not memory.known_to_learn(0.5, 1.0, CONTEXT, within=32)  # it learned too late
    assert not memory.known_to_learn(0.02, 0.05, CONTEXT, within=48)  # a gentler range only
    assert not memory.known_to_learn(0.5, 1.0, ("other",), within=48)  # another context


def test_the_summary_counts_what_was_found_unstable_after_finishing(tmp_path: Path) -> None:
    from prl_tune.report import build_report, format_summary

    study = _study(tmp_path)
    _run(study, 0.1, _history(1.0, 0.3), learned_at=12, value=0.95, steps=100)
    _run(study, 1.0, _history(2.33, 2.35), value=0.1, steps=80)
    report = build_report(study)
    assert report.taught == {"dead": 1}
    assert report.unstable_steps == 80
    line = next(x for x in format_summary(study).splitlines() if "found after finishing" in x)
    assert line.strip() == "unstable, found after finishing: 1 (dead 1)"
