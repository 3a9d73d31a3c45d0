"""InstabilityPruner through Optuna's public API on real SQLite storage."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.hosts.optuna import InstabilityPruner
from prl_tune.stability import StabilityRules, StopRecord
from prl_tune.store import mark_unstable, stability_boundary, trial_attrs

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _study(tmp_path: Path, pruner: optuna.pruners.BasePruner, direction: str = "maximize"):
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    return optuna.create_study(
        storage=storage, study_name="p", pruner=pruner, direction=direction
    ), storage


def _trial_with_range(study: optuna.Study, lr_min: float, lr_max: float) -> optuna.Trial:
    trial = study.ask()
    trial.set_user_attr("lr_min", lr_min)
    trial.set_user_attr("lr_max", lr_max)
    return trial


def _unstable_trial(study: optuna.Study, lr_min: float, lr_max: float) -> None:
    trial = _trial_with_range(study, lr_min, lr_max)
    mark_unstable(trial, StopRecord("rules", "collapsed", "collapsed", 40))
    study.tell(trial, state=TrialState.PRUNED)


def _stored(storage: str, number: int) -> dict:
    """A trial's attributes as another process reads them back from the store."""
    return trial_attrs(optuna.load_study(study_name="p", storage=storage))[number]


def test_memory_prunes_a_dominated_range_at_its_first_check(tmp_path: Path) -> None:
    pruner = InstabilityPruner()
    study, storage = _study(tmp_path, pruner)
    _unstable_trial(study, 1.4, 2.0)
    trial = _trial_with_range(study, 1.5, 2.5)
    trial.report(0.9, 1)
    assert trial.should_prune()
    reason = "memory: range at least as aggressive as unstable trial 0 (lr_min=1.4, lr_max=2)"
    assert _stored(storage, trial.number) == {
        "lr_min": 1.5,
        "lr_max": 2.5,
        "unstable": True,
        "pruned_by": "memory",
        "prune_reason": reason,
    }
    assert pruner.decision(study, trial.number) == StopRecord("memory", reason)


def test_memory_lets_a_less_aggressive_range_run(tmp_path: Path) -> None:
    study, _ = _study(tmp_path, InstabilityPruner())
    _unstable_trial(study, 1.4, 2.0)
    trial = _trial_with_range(study, 0.1, 2.5)
    trial.report(0.9, 1)
    assert not trial.should_prune()
    (tmp_path / "strict").mkdir()
    strict, _ = _study(tmp_path / "strict", InstabilityPruner(memory="lr_max"))
    _unstable_trial(strict, 1.4, 2.0)
    trial = _trial_with_range(strict, 0.1, 2.5)
    trial.report(0.9, 1)
    assert trial.should_prune()


def test_memory_is_shared_across_processes_through_the_store(tmp_path: Path) -> None:
    study, storage = _study(tmp_path, InstabilityPruner())
    script = textwrap.dedent(
        f"""
        import optuna
        from optuna.trial import TrialState
        from prl_tune.stability import StopRecord
        from prl_tune.store import mark_unstable
        study = optuna.load_study(study_name="p", storage={storage!r})
        trial = study.ask()
        trial.set_user_attr("lr_min", 1.4)
        trial.set_user_attr("lr_max", 2.0)
        mark_unstable(trial, StopRecord("rules", "exploded", "exploded"))
        study.tell(trial, state=TrialState.PRUNED)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    trial = _trial_with_range(study, 1.5, 3.0)
    trial.report(0.5, 1)
    assert trial.should_prune()


def test_rules_apply_to_reported_losses_of_a_minimized_study(tmp_path: Path) -> None:
    study, storage = _study(tmp_path, InstabilityPruner(memory="off"), direction="minimize")
    trial = study.ask()
    trial.report(2.3, 1)
    assert not trial.should_prune()
    trial.report(math.nan, 2)
    assert trial.should_prune()
    assert _stored(storage, trial.number) == {
        "unstable": True,
        "pruned_by": "rules",
        "prune_reason": "non-finite training loss (nan) at step 2",
        "instability": "non-finite",
        "diverged_at_step": 2,
    }


# Every rule that can fire on reported values, with a hand-built sequence of reports: the rules,
# the chance level, the reported values, the index of the report at which the rule fires, and
# a part of the reason (``{si}`` is the report step of the report at index ``i``, ``{w}`` the
# first step of a 25-step window ending at the firing report). With ``smoothing=1`` the running
# losses are the reported values themselves.
_CHANCE = math.log(10)
_RAW = {"smoothing": 1.0, "collapse_smoothing": 1.0}
_FIRES = {
    # the third report is NaN
    "non-finite": ({}, None, [2.3, 2.0, math.nan, 1.0], 2, "(nan) at step {s2}"),
    # running loss 1.95 + 0.1 x (1000 - 1.95) > 10 x the first report (2.0)
    "exploded": ({}, None, [2.0, 1.5, 1000.0, 1.0], 2, "at step {s2}"),
    # a spike above 2 x chance at index 1, then at chance from index 2: the window of 16
    # steps is full at index 4 (21 report steps at chance), not at index 3 (11 steps)
    "collapsed": (
        {**_RAW, "collapse_window": 16},
        _CHANCE,
        [2.3, 10.0, _CHANCE, _CHANCE, _CHANCE, 1.0],
        4,
        "for 21 steps after a spike to 10 at step {s1}",
    ),
    # above 3 x the first report (2.0) from index 1 on: steps s1-s3 span 21 steps, s1-s4
    # 31, so the window of 25 is full at index 4
    "sustained": (
        {**_RAW, "sustain_window": 25},
        None,
        [2.0, 7.0, 7.0, 7.0, 7.0, 1.0],
        4,
        "for 31 steps (steps {s1}-{s4})",
    ),
    # above 5 x the best before the window (0.5) for 25 steps: the window (steps w to s6)
    # holds only 3.0 at index 6; at index 5 it still holds the 0.5 of index 3
    "rising": (
        {**_RAW, "rise_window": 25},
        None,
        [2.0, 1.0, 0.5, 0.5, 3.0, 3.0, 3.0, 0.1],
        6,
        "(steps {w}-{s6})",
    ),
}


def _report_steps(first: int, count: int) -> list[int]:
    return [first + 10 * i for i in range(count)]


@pytest.mark.parametrize("first", [10, 0])
@pytest.mark.parametrize("kind", sorted(_FIRES))
def test_each_rule_prunes_at_the_report_step_where_it_fires(
    tmp_path: Path, kind: str, first: int
) -> None:
    rules, chance, values, index, fragment = _FIRES[kind]
    pruner = InstabilityPruner(memory="off", rules=StabilityRules(**rules), chance_loss=chance)
    study, storage = _study(tmp_path, pruner, direction="minimize")
    trial = study.ask()
    steps = _report_steps(first, len(values))
    pruned = []
    for step, value in zip(steps, values, strict=True):
        trial.report(value, step)
        pruned.append(trial.should_prune())
        if pruned[-1]:
            break
    assert pruned == [False] * index + [True]
    stored = _stored(storage, trial.number)
    assert stored["instability"] == kind
    assert stored["diverged_at_step"] == steps[index]
    assert (stored["unstable"], stored["pruned_by"]) == (True, "rules")
    named = {f"s{i}": step for i, step in enumerate(steps)}
    assert fragment.format(**named, w=steps[index] - 24) in stored["prune_reason"]
    assert pruner.decision(study, trial.number) == StopRecord(
        "rules", stored["prune_reason"], kind, steps[index]
    )


@pytest.mark.parametrize("kind", sorted(_FIRES))
def test_reports_judged_at_once_or_out_of_order_give_the_same_verdict(
    tmp_path: Path, kind: str
) -> None:
    rules, chance, values, index, _ = _FIRES[kind]
    pruner = InstabilityPruner(memory="off", rules=StabilityRules(**rules), chance_loss=chance)
    study, storage = _study(tmp_path, pruner, direction="minimize")
    steps = _report_steps(10, len(values))
    at_once = study.ask()
    for step, value in zip(steps, values, strict=True):
        at_once.report(value, step)
    assert at_once.should_prune()
    # judged after each report, but the firing report arrives after the one that follows it
    shuffled = study.ask()
    verdicts = []
    for i in [*range(index), index + 1, index]:
        shuffled.report(values[i], steps[i])
        verdicts.append(shuffled.should_prune())
    assert verdicts == [False] * (index + 1) + [True]
    for number in (at_once.number, shuffled.number):
        stored = _stored(storage, number)
        assert (stored["instability"], stored["diverged_at_step"]) == (kind, steps[index])


def test_a_stable_loss_at_report_steps_is_not_pruned(tmp_path: Path) -> None:
    rules = StabilityRules(rise_window=25)
    pruner = InstabilityPruner(memory="off", rules=rules, chance_loss=_CHANCE)
    study, storage = _study(tmp_path, pruner, direction="minimize")
    trial = study.ask()
    values = [2.3, 2.0, 1.6, 1.2, 0.9, 0.7, 0.5, 0.4, 0.35, 0.3]
    for step, value in zip(_report_steps(0, len(values)), values, strict=True):
        trial.report(value, step)
        assert not trial.should_prune()
    assert _stored(storage, trial.number) == {}


def test_without_the_chance_level_a_collapse_is_not_pruned(tmp_path: Path) -> None:
    rules, _, values, _, _ = _FIRES["collapsed"]
    pruner = InstabilityPruner(memory="off", rules=StabilityRules(**rules))
    study, storage = _study(tmp_path, pruner, direction="minimize")
    trial = study.ask()
    for step, value in zip(_report_steps(10, len(values)), values, strict=True):
        trial.report(value, step)
        assert not trial.should_prune()
    assert _stored(storage, trial.number) == {}
    assert pruner.decision(study, trial.number) is None


def test_a_pickled_pruner_judges_the_same(tmp_path: Path) -> None:
    rules, chance, values, index, _ = _FIRES["collapsed"]
    pruner = InstabilityPruner(memory="off", rules=StabilityRules(**rules), chance_loss=chance)
    study, storage = _study(tmp_path, pruner, direction="minimize")
    trial = study.ask()
    steps = _report_steps(10, len(values))
    for step, value in zip(steps[:index], values[:index], strict=True):
        trial.report(value, step)
        assert not trial.should_prune()
    study.pruner = pickle.loads(pickle.dumps(pruner))
    assert study.pruner.chance_loss == chance
    trial.report(values[index], steps[index])
    assert trial.should_prune()
    assert _stored(storage, trial.number)["diverged_at_step"] == steps[index]


def test_healthy_losses_defer_to_the_base_pruner(tmp_path: Path) -> None:
    base = optuna.pruners.ThresholdPruner(upper=1.0)
    study, storage = _study(tmp_path, InstabilityPruner(base), direction="minimize")
    trial = study.ask()
    for step, loss in enumerate([2.3, 1.5, 1.2], start=1):
        trial.report(loss, step)
    assert trial.should_prune()  # the base (threshold 1.0) prunes, not the rules
    assert _stored(storage, trial.number) == {}
    trial2 = study.ask()
    for step, loss in enumerate([2.3, 0.9, 0.5], start=1):
        trial2.report(loss, step)
    assert not trial2.should_prune()


def test_maximized_accuracy_reports_are_not_treated_as_losses(tmp_path: Path) -> None:
    study, _ = _study(tmp_path, InstabilityPruner(memory="off"))
    trial = study.ask()
    for step, accuracy in enumerate([0.1, 0.5, 20.0 * 0.05], start=1):
        trial.report(accuracy, step)
    assert not trial.should_prune()


def test_stability_boundary_is_queryable_from_the_store(tmp_path: Path) -> None:
    study, storage = _study(tmp_path, InstabilityPruner())
    for lr_max in (0.1, 0.5):
        trial = _trial_with_range(study, 0.7 * lr_max, lr_max)
        study.tell(trial, 0.9)
    _unstable_trial(study, 1.4, 2.0)
    reloaded = optuna.load_study(study_name="p", storage=storage)
    assert list(stability_boundary(reloaded).values()) == [(0.5, 2.0)]


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"base": "median"}, TypeError, "base"),
        ({"rules": {"check_every": 3}}, TypeError, "rules"),
        ({"memory": "yes"}, ValueError, "memory"),
        ({"rules_on_reports": 1}, TypeError, "rules_on_reports"),
        ({"chance_loss": 0}, ValueError, "chance_loss must be a finite number > 0"),
        ({"chance_loss": -1}, ValueError, "chance_loss must be a finite number > 0"),
        ({"chance_loss": math.nan}, ValueError, "chance_loss must be a finite number > 0"),
        ({"chance_loss": "x"}, TypeError, "chance_loss must be a finite number > 0"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        InstabilityPruner(**kwargs)


def test_default_rules_are_the_stability_defaults() -> None:
    assert InstabilityPruner().rules == StabilityRules()


def test_a_stable_trial_above_an_unstable_one_is_reported_as_an_overlap(tmp_path: Path) -> None:
    from prl_tune.report import format_summary

    study, _ = _study(tmp_path, InstabilityPruner())
    _unstable_trial(study, 0.3, 0.349)
    study.tell(_trial_with_range(study, 0.01, 0.552), 0.9)
    assert list(stability_boundary(study).values()) == [(0.552, 0.349)]
    lines = format_summary(study).splitlines()
    assert (
        "  stability overlap (scheduler=plrs): stable up to lr_max 0.552, unstable from lr_max "
        "0.349; between 0.349 and 0.552 both were seen (seeds, lr_min and momentum make "
        "instability a matter of chance there)" in lines
    )
    assert not any("stability boundary" in line for line in lines)


def test_pruning_base_asha_is_optunas_successive_halving() -> None:
    from prl_tune.config import StudySpec
    from prl_tune.hosts.optuna import make_pruner

    spec = StudySpec.from_dict(
        {
            "study": {"name": "s", "n_trials": 3},
            "task": {"epochs": 9},
            "pruning": {"base": "asha", "min_resource": 2, "reduction_factor": 4},
        }
    )
    pruner = make_pruner(spec)
    assert isinstance(pruner.base, optuna.pruners.SuccessiveHalvingPruner)
    assert pruner.base._min_resource == 2 and pruner.base._reduction_factor == 4


def test_a_stateful_optimizer_gets_its_window_to_come_back_from_a_spike(tmp_path: Path) -> None:
    rules = StabilityRules(explode_window_stateful=3)
    spike = [2.0, 1000.0, 0.5, 0.4, 0.3]
    verdicts = {}
    for stateful in (False, True):
        pruner = InstabilityPruner(memory="off", rules=rules, stateful_optimizer=stateful)
        folder = tmp_path / str(stateful)
        folder.mkdir()
        study, _ = _study(folder, pruner, direction="minimize")
        trial = study.ask()
        pruned = []
        for step, value in enumerate(spike):
            trial.report(value, step)
            pruned.append(trial.should_prune())
        verdicts[stateful] = pruned
    assert verdicts[False] == [False, True, True, True, True]  # plain SGD: at the spike
    assert verdicts[True] == [False] * 5  # the median of 3 reports never saw it
