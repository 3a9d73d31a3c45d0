"""``prl-tune compare`` with ``[comparison] budget = "steps"``: every scheduler's tuning gets the
same optimizer steps (pruned and shorter trials at the steps they ran), within one trial's
steps; a re-run with a larger budget extends the tuning. Real studies on a temporary SQLite file,
real training of a tiny task."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.cli import main
from prl_tune.compare import stored_table
from prl_tune.store import steps_used, trial_steps

optuna.logging.set_verbosity(optuna.logging.WARNING)

SCHEDULERS = ("plrs", "constant")
#: The blobs task: 6 batches per epoch, 3 epochs.
TRIAL_STEPS = 18
TRIALS = 3
BUDGET = TRIALS * TRIAL_STEPS


def _write(folder: Path) -> tuple[Path, str]:
    storage = f"sqlite:///{folder / 'store.db'}"
    path = folder / "study.toml"
    path.write_text(
        f'[study]\nname = "s"\nstorage = "{storage}"\nn_trials = 6\nseed = 0\nthreads = 1\n\n'
        '[task]\nname = "fixtures.compare_tasks:counted_test"\nepochs = 3\n\n'
        f'[optimizer]\nname = "sgd"\n\n[space]\nschedulers = {list(SCHEDULERS)}\n'
        "lr_max = [0.01, 30.0]\nlr = [0.01, 30.0]\n\n"  # the widest blow up within a few steps
        '[pruning]\nbase = "median"\nn_startup_trials = 1\n\n'
        f'[comparison]\ntrials = {TRIALS}\nseeds = 2\nbudget = "steps"\n',
        encoding="utf-8",
    )
    return path, storage


def _tuning(storage: str, scheduler: str) -> optuna.Study:
    return optuna.load_study(study_name=f"s/{scheduler}/tuning-0", storage=storage)


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One steps-budget comparison run by the CLI: (study file, storage, the printed table)."""
    path, storage = _write(tmp_path_factory.mktemp("steps"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", str(path)]) == 0
    return path, storage, out.getvalue()


def test_every_scheduler_gets_the_same_steps_within_one_trial(compared) -> None:
    _, storage, printed = compared
    for scheduler in SCHEDULERS:
        trials = _tuning(storage, scheduler).get_trials()
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        used = steps_used(trials)
        assert BUDGET <= used < BUDGET + TRIAL_STEPS, (scheduler, used)
        # the trial that crossed the budget was the last; before it the study was short
        assert used - trial_steps(trials[-1]) < BUDGET
    assert f"steps: tuning (budget {BUDGET})" in printed
    assert f"{BUDGET} tuning steps x 1 tuning study" in printed
    assert "what 3 full trials of 18 steps cost" in printed


def test_pruned_trials_count_the_steps_they_ran(compared) -> None:
    _, storage, _ = compared
    short = []
    for scheduler in SCHEDULERS:
        trials = _tuning(storage, scheduler).get_trials()
        short += [t for t in trials if trial_steps(t) < TRIAL_STEPS]
        assert steps_used(trials) == sum(t.user_attrs["steps"] for t in trials)
    assert short, "no trial was stopped early: the test would not show that they count"
    assert {t.state for t in short} == {TrialState.PRUNED}


def test_the_table_shows_trials_and_steps_of_each_scheduler(compared) -> None:
    _, storage, printed = compared
    table = stored_table(optuna.load_study(study_name="s/evaluation", storage=storage))
    assert table is not None
    assert table.budget == "steps" and table.step_budget == BUDGET
    assert table.trial_steps == TRIAL_STEPS and table.trial_cap == 10 * TRIALS
    for row in table.rows:
        trials = _tuning(storage, row.scheduler).get_trials()
        assert row.tuning_trials == len(trials)
        assert row.study_steps == (steps_used(trials),) and row.tuning_steps == row.study_steps[0]
        over = row.study_steps[0] - BUDGET
        assert f"{row.tuning_finished}/{row.tuning_trials}" in printed
        assert f"{row.study_steps[0]} (+{over})" in printed


def test_a_rerun_runs_nothing_and_a_larger_budget_extends_the_tuning(compared, capsys) -> None:
    path, storage, printed = compared
    before = {s: [t.number for t in _tuning(storage, s).get_trials()] for s in SCHEDULERS}
    assert main(["compare", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == printed and captured.err.count("already done") == len(SCHEDULERS)
    larger = 2 * BUDGET
    assert main(["compare", str(path), "--set", f"comparison.steps={larger}"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("already done") == 0
    for scheduler in SCHEDULERS:
        trials = _tuning(storage, scheduler).get_trials()
        assert [t.number for t in trials][: len(before[scheduler])] == before[scheduler]
        assert larger <= steps_used(trials) < larger + TRIAL_STEPS
    assert f"steps: tuning (budget {larger})" in captured.out
