"""InstabilityPruner through Optuna's public API on real SQLite storage."""

from __future__ import annotations

import math
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
        "  stability overlap (scheduler=plrs): unstable from lr_max 0.349, yet stable up to "
        "lr_max 0.552: no lr_max boundary" in lines
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
