"""``prl-tune compare`` end to end: real Optuna studies on a temporary SQLite file and real torch
training on tiny budgets."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from fixtures import compare_tasks
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from prl_tune.cli import main
from prl_tune.compare import (
    ENVIRONMENT_ATTR,
    TABLE_ATTR,
    ComparisonTable,
    build_table,
    evaluate_schedulers,
    format_comparison,
    plan_comparison,
    run_comparison,
    stored_table,
    tune_schedulers,
)
from prl_tune.config import load_spec
from prl_tune.hosts.optuna import _worker

optuna.logging.set_verbosity(optuna.logging.WARNING)

SCHEDULERS = '["plrs", "cosine", "constant"]'
SECTIONS = """lr = [0.01, 0.5]

[pruning]
base = "median"
n_startup_trials = 1

[comparison]
trials = {trials}
seeds = {seeds}
studies = {studies}
"""


def _study(write_study: Callable[..., tuple[Path, str]], **options: object) -> tuple[Path, str]:
    """A 3-scheduler comparison on the digits MLP: 1 epoch, 3 trials, 3 seeds by default."""
    sections = {"trials": 3, "seeds": 3, "studies": 1}
    sections.update({k: options.pop(k) for k in list(options) if k in sections})
    return write_study(
        name="c",
        schedulers=SCHEDULERS,
        space_extra=SECTIONS.format(**sections),
        **options,
    )


def _trials(storage: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One comparison run by the CLI: (study file, storage, the table it printed)."""
    folder = tmp_path_factory.mktemp("compared")
    storage = f"sqlite:///{folder / 'store.db'}"
    path = folder / "study.toml"
    path.write_text(
        f'[study]\nname = "c"\nstorage = "{storage}"\nn_trials = 9\nseed = 0\nthreads = 1\n\n'
        '[task]\nname = "digits"\nepochs = 1\nparams = { model = "mlp" }\n\n'
        f'[optimizer]\nname = "sgd"\n\n[space]\nschedulers = {SCHEDULERS}\n'
        "lr_max = [0.01, 0.5]\n" + SECTIONS.format(trials=3, seeds=3, studies=1),
        encoding="utf-8",
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", str(path), "--out", str(folder / "table.md")]) == 0
    return path, storage, out.getvalue()


class _Recording(optuna.pruners.BasePruner):
    """Records which schedulers' curves a base pruner sees, then lets the real one decide."""

    def __init__(self, base: optuna.pruners.BasePruner, seen: list[tuple[str, set]]) -> None:
        self.base = base
        self.seen = seen

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        curves = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
        self.seen.append((study.study_name, {t.user_attrs.get("scheduler") for t in curves}))
        return self.base.prune(study, trial)


def test_no_pruner_ever_sees_another_schedulers_curves(write_study, monkeypatch) -> None:
    seen: list[tuple[str, set]] = []
    make_pruner = _worker.make_pruner

    def recording(spec):  # type: ignore[no-untyped-def]
        pruner = make_pruner(spec)
        pruner.base = _Recording(pruner.base, seen)
        return pruner

    monkeypatch.setattr(_worker, "make_pruner", recording)
    path, storage = _study(write_study, epochs=2, trials=3)
    plan = plan_comparison(load_spec(path))
    tuned = tune_schedulers(plan, stream=None)
    assert sorted(tuned) == [("constant", 0), ("cosine", 0), ("plrs", 0)]
    for (scheduler, _), study in tuned.items():
        assert study.study_name == f"c/{scheduler}/tuning-0"
        assert len(study.trials) == 3  # the same budget for each
        assert {t.user_attrs["scheduler"] for t in study.trials} == {scheduler}
        assert {t.user_attrs["seed"] for t in study.trials} == {0}
    assert len(seen) >= 6  # every reported epoch went to a base pruner (not vacuous)
    for name, schedulers in seen:
        assert schedulers == {name.split("/")[1]}, (name, schedulers)
    assert not any("/" not in name for name in optuna.get_all_study_names(storage))


def test_the_test_split_is_never_touched_before_evaluation(write_study) -> None:
    path, _ = _study(
        write_study, task="fixtures.compare_tasks:counted_test", task_params="", seeds=2
    )
    plan = plan_comparison(load_spec(path))
    compare_tasks.TEST_PASSES.clear()
    tuned = tune_schedulers(plan, stream=None)
    assert sum(len(s.trials) for s in tuned.values()) == 9
    assert compare_tasks.TEST_PASSES == []  # no tuning trial iterated the test loader
    evaluation = evaluate_schedulers(plan, tuned, stream=None)
    # each evaluation run (3 schedulers x 2 seeds) scored the test split once, at its own seed
    assert sorted(compare_tasks.TEST_PASSES) == sorted(list(plan.seeds) * 3)
    runs = evaluation.trials
    assert {t.user_attrs["scored_on"] for t in runs} == {"test"}
    assert all(t.value == t.user_attrs["test_score"] for t in runs)
    table = build_table(plan, tuned, evaluation)
    assert table.scored_on == "test" and table.score == "test_accuracy"


def test_without_a_test_split_the_table_says_it_reports_validation_scores(
    write_study, capsys
) -> None:
    path, _ = _study(write_study, task="fixtures.compare_tasks:no_test", task_params="", seeds=2)
    assert main(["compare", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "val_accuracy (validation) mean ± sd" in out
    assert "VALIDATION split: the task returns no test_loader" in out


def test_evaluation_seeds_differ_from_the_tuning_seeds(compared) -> None:
    _, storage, _ = compared
    tuning_seeds = {
        t.user_attrs["seed"]
        for name in optuna.get_all_study_names(storage)
        if "/tuning-" in name
        for t in _trials(storage, name)
    }
    evaluation_seeds = {t.user_attrs["seed"] for t in _trials(storage, "c/evaluation")}
    assert tuning_seeds == {0}
    assert evaluation_seeds == {1000, 1001, 1002}


def test_the_stored_table_matches_scipy_on_the_stored_scores(compared) -> None:
    _, storage, printed = compared
    evaluation = optuna.load_study(study_name="c/evaluation", storage=storage)
    table = stored_table(evaluation)
    assert table is not None
    scores: dict[str, list[float]] = {}
    for trial in sorted(evaluation.trials, key=lambda t: t.user_attrs["seed"]):
        assert trial.state == TrialState.COMPLETE
        scores.setdefault(trial.user_attrs["scheduler"], []).append(trial.value)
    for scheduler in ("cosine", "constant"):
        row = table.row(scheduler)
        assert list(row.scores) == scores[scheduler]
        by_hand = stats.ttest_ind(scores[scheduler], scores["plrs"], equal_var=False)
        low, high = by_hand.confidence_interval(0.95)
        assert row.ci == pytest.approx((low, high), rel=1e-12)
        plain = "no significant difference" if low <= 0 <= high else "than plrs"
        assert plain in row.verdict and plain in printed
    assert table.row("plrs").verdict == "baseline"
    env = evaluation.user_attrs[ENVIRONMENT_ATTR][0]
    assert set(env) == {"prl_tune", "torch", "optuna", "python", "device", "threads"}
    assert env["threads"] == "1"  # [study] threads = 1
    json.dumps(evaluation.user_attrs[TABLE_ATTR])  # JSON rows a report can render


def test_the_table_counts_tuning_effort_and_steps(compared) -> None:
    _, storage, _ = compared
    table = stored_table(optuna.load_study(study_name="c/evaluation", storage=storage))
    assert table is not None
    for row in table.rows:
        tuning = _trials(storage, f"c/{row.scheduler}/tuning-0")
        assert row.tuning_trials == 3
        assert row.tuning_finished == sum(t.state == TrialState.COMPLETE for t in tuning)
        assert row.tuning_steps == sum(t.user_attrs.get("steps", 0) for t in tuning)
        assert row.evaluation_steps == 3 * 17  # 3 seeds x 1 epoch of 17 batches
        assert row.runs == row.runs_planned == 3
        (to_within,) = row.trials_to_within
        assert to_within is not None and 1 <= to_within <= 3
        best = max(t.value for t in tuning if t.state == TrialState.COMPLETE)
        assert row.tuning_best == (best,)


def test_rerun_skips_finished_work_and_prints_the_same_table(compared, capsys) -> None:
    path, storage, printed = compared
    before = {n: len(_trials(storage, n)) for n in optuna.get_all_study_names(storage)}
    markdown = (path.parent / "table.md").read_text(encoding="utf-8")
    assert main(["compare", str(path), "--out", str(path.parent / "again.md")]) == 0
    captured = capsys.readouterr()
    assert captured.out == printed
    assert (path.parent / "again.md").read_text(encoding="utf-8") == markdown
    assert captured.err.count("already done") == 3
    assert "evaluation: 0 runs now" in captured.err
    after = {n: len(_trials(storage, n)) for n in optuna.get_all_study_names(storage)}
    assert after == before


def test_more_seeds_later_run_only_the_new_ones(write_study) -> None:
    path, storage = _study(write_study, trials=2, seeds=2)
    first = run_comparison(load_spec(path), stream=None)
    runs = {
        (t.user_attrs["scheduler"], t.user_attrs["seed"], t.value)
        for t in _trials(storage, "c/evaluation")
    }
    second = run_comparison(load_spec(path, overrides={"comparison.seeds": 3}), stream=None)
    again = {
        (t.user_attrs["scheduler"], t.user_attrs["seed"], t.value)
        for t in _trials(storage, "c/evaluation")
    }
    assert runs < again and len(again) == 9
    assert {s for _, s, _ in again - runs} == {1002}
    assert [len(r.scores) for r in first.rows] == [2, 2, 2]
    assert [len(r.scores) for r in second.rows] == [3, 3, 3]
    assert ComparisonTable.from_dict(second.to_dict()) == second


def test_a_run_that_turns_non_finite_is_stored_as_stopped_and_has_no_score(write_study) -> None:
    path, storage = _study(
        write_study, task="fixtures.compare_tasks:nan_when_evaluated", task_params="", seeds=2
    )
    table = run_comparison(load_spec(path), stream=None)
    runs = _trials(storage, "c/evaluation")
    assert len(runs) == 6 and {t.state for t in runs} == {TrialState.PRUNED}
    assert all(t.user_attrs["instability"] == "non-finite" for t in runs)
    row = table.row("cosine")
    assert row.scores == () and row.runs == row.runs_planned == 2 and row.ci is None
    assert row.verdict == "n/a: needs 2 scores of each"
    assert "0/2 (2 stopped)" in format_comparison(table)
    assert table.scored_on == "none"  # no run scored: neither test nor validation
    # a stopped run is done: the next command does not repeat it
    run_comparison(load_spec(path), stream=None)
    assert len(_trials(storage, "c/evaluation")) == 6


def test_tune_of_the_same_file_runs_it_as_one_study_and_says_so(write_study, capsys) -> None:
    path, storage = _study(write_study)
    assert main(["tune", str(path), "--n-trials", "2"]) == 0
    assert "note: [comparison] is read by prl-tune compare" in capsys.readouterr().err
    assert optuna.get_all_study_names(storage) == ["c"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "comparison.seeds=0"], "[comparison] seeds: must be >= 1 but got 0."),
        (["--set", "comparison.baseline='knee'"], "[comparison] baseline: must be one of"),
        (["--set", "comparison.trails=2"], "[comparison] trails: unknown key (did you mean"),
        (["--set", "task.params.test_fraction=0"], "[task] params.test_fraction: prl-tune"),
        (["--set", "comparison.budget='epochs'"], "[comparison] budget: must be one of"),
        (
            ["--set", "comparison.budget='steps'", "--set", "comparison.steps=0"],
            "[comparison] steps: must be >= 1 or None but got 0.",
        ),
        (
            ["--set", "comparison.budget='steps'", "--set", "comparison.steps='many'"],
            "[comparison] steps: must be an integer >= 1 or None but got 'many' (str).",
        ),
        (["--set", "comparison.steps=500"], "[comparison] steps: is the step budget, read only"),
        (["--out", "/nonexistent/folder/t.md"], "--out: folder '/nonexistent/folder'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(write_study, capsys, args, message) -> None:
    path, storage = _study(write_study)
    assert main(["compare", str(path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prl-tune: error: ") and message in err[0]
    assert not Path(storage.removeprefix("sqlite:///")).exists()
    assert not (path.parent / "t.md").exists()


def test_the_shipped_comparison_study_runs_on_a_tiny_budget(tmp_path, capsys) -> None:
    study = Path(__file__).parents[2] / "studies" / "scheduler-comparison.toml"
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(
        [
            "compare",
            str(study),
            "--storage",
            storage,
            "--seeds",
            "2",
            "--set",
            "task.epochs=1",
            "--set",
            "comparison.trials=1",
            "--set",
            "task.params.model='mlp'",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for scheduler in ("plrs (baseline)", "cosine", "onecycle", "knee", "multistep", "constant"):
        assert f"\n{scheduler} " in out
    assert "test accuracy mean ± sd" in out and "20% of the samples" in out
