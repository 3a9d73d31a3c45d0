"""``StudySearcher``: Ray Tune trials proposed by an Optuna study and recorded in it truthfully."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune import PLRSSpace
from prl_tune.hosts.ray import InstabilityScheduler, StopRecord, StudySearcher
from prl_tune.store import mark_unstable

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = PLRSSpace(lr_max=(1e-3, 10.0))


def _study(tmp_path: Path, direction: str = "maximize") -> tuple[optuna.Study, str]:
    storage = f"sqlite:///{tmp_path / 'ray.db'}"
    return optuna.create_study(storage=storage, study_name="r", direction=direction), storage


def _stored(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="r", storage=storage).trials


def _searcher(study: optuna.Study, **kwargs: object) -> StudySearcher:
    searcher = StudySearcher(study, SPACE, **kwargs)  # type: ignore[arg-type]
    searcher.set_search_properties("val_accuracy", "max", {})
    return searcher


def test_a_trial_that_runs_to_its_end_is_complete_with_every_epoch_stored(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    searcher = _searcher(study, max_iterations=3)
    config = searcher.suggest("t1")
    assert config is not None and set(config) == {"lr_max", "lr_min_ratio"}
    for epoch, accuracy in enumerate([0.5, 0.7], start=1):
        searcher.on_trial_result("t1", {"val_accuracy": accuracy, "training_iteration": epoch})
    # Ray hands the last result only to on_trial_complete.
    searcher.on_trial_complete("t1", {"val_accuracy": 0.8, "training_iteration": 3})
    (trial,) = _stored(storage)
    assert trial.state == TrialState.COMPLETE
    assert trial.value == 0.8
    assert trial.intermediate_values == {1: 0.5, 2: 0.7, 3: 0.8}
    assert trial.user_attrs["lr_max"] == config["lr_max"]
    assert trial.user_attrs["lr_min"] == config["lr_min_ratio"] * config["lr_max"]
    assert trial.user_attrs["ray_trial_id"] == "t1"


def test_a_trial_stopped_early_by_a_scheduler_is_pruned_not_complete(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    searcher = _searcher(study, max_iterations=3)
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {"val_accuracy": 0.2, "training_iteration": 1})
    searcher.on_trial_complete("t1", {"val_accuracy": 0.3, "training_iteration": 2, "done": True})
    (trial,) = _stored(storage)
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.2, 2: 0.3}
    assert trial.user_attrs["pruned_by"] == "base"
    assert trial.user_attrs["prune_reason"] == "stopped by the scheduler after 2 results"


def test_errors_nan_and_unstable_results_get_their_own_states(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    scheduler = InstabilityScheduler(space=SPACE)
    searcher = _searcher(study, scheduler=scheduler)
    for trial_id in ("error", "nan", "unstable", "memory"):
        searcher.suggest(trial_id)
    searcher.on_trial_complete("error", {"val_accuracy": 0.4, "training_iteration": 1}, error=True)
    searcher.on_trial_complete("nan", {"val_accuracy": math.nan, "training_iteration": 1})
    searcher.on_trial_complete(
        "unstable",
        {
            "unstable": True,
            "prune_reason": "exploded: ...",
            "instability": "exploded",
            "diverged_at_step": 3,
        },
    )
    scheduler.stopped["memory"] = StopRecord("memory", "memory: range ...")
    searcher.on_trial_complete("memory")  # a pending trial Ray removed: no result at all
    error, nan, unstable, memory = _stored(storage)
    assert (error.state, error.user_attrs["error"]) == (
        TrialState.FAIL,
        "the trial raised; its error file is in Ray's trial folder",
    )
    assert (nan.state, nan.user_attrs["error"]) == (TrialState.FAIL, "objective value is nan")
    assert unstable.state == TrialState.PRUNED
    assert {k: unstable.user_attrs[k] for k in ("unstable", "pruned_by", "diverged_at_step")} == {
        "unstable": True,
        "pruned_by": "rules",
        "diverged_at_step": 3,
    }
    assert unstable.constraints == {"unstable": 1.0}
    assert memory.state == TrialState.PRUNED
    assert memory.user_attrs["pruned_by"] == "memory"
    assert Counter(t.state for t in _stored(storage))[TrialState.RUNNING] == 0


def test_the_schedulers_memory_starts_from_the_studys_unstable_ranges(tmp_path: Path) -> None:
    study, _ = _study(tmp_path)
    trial = study.ask()
    SPACE.suggest(trial)
    mark_unstable(trial, StopRecord("rules", "exploded", "exploded", 2))
    study.tell(trial, state=TrialState.PRUNED)
    unstable = study.trials[0]
    scheduler = InstabilityScheduler(space=SPACE)
    StudySearcher(study, SPACE, scheduler=scheduler)
    above = {"lr_max": unstable.params["lr_max"] * 1.5, "lr_min_ratio": 1.0}
    assert scheduler.blocker(above) is not None


def test_a_searcher_without_a_metric_says_so_at_its_first_trial(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    with pytest.raises(ValueError, match="metric must be given to StudySearcher"):
        StudySearcher(study, SPACE).suggest("t1")
    assert _stored(storage) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"study": "sqlite:///x.db"}, TypeError, "study must be an optuna.Study"),
        ({"space": {"lr_max": 1}}, TypeError, "space must be a PLRSSpace or SchedulerSpace"),
        ({"mode": "min"}, ValueError, "mode must agree with the study's direction (maximize)"),
        ({"max_iterations": 0}, ValueError, "max_iterations must be >= 1"),
        ({"scheduler": object()}, TypeError, "scheduler must be an InstabilityScheduler"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, error: type, fragment: str) -> None:
    study, _ = _study(tmp_path)
    arguments = {"study": study, "space": SPACE, **kwargs}
    with pytest.raises(error) as info:
        StudySearcher(**arguments)
    assert fragment in str(info.value)


@pytest.mark.slow
def test_a_tuner_run_records_every_trial_truthfully(local_ray: None, tmp_path: Path) -> None:
    from fixtures import ray_trainables
    from ray import tune

    study, storage = _study(tmp_path)
    # One at a time, in this order: explodes; learns; dominates the first (never starts);
    # raises in its own code.
    for lr_max, ratio in [(7.0, 0.8), (0.1, 0.8), (9.0, 0.9), (0.25, 0.8)]:
        study.enqueue_trial({"lr_max": lr_max, "lr_min_ratio": ratio})
    scheduler = InstabilityScheduler(space=ray_trainables.SPACE, chance_loss=math.log(10))
    searcher = StudySearcher(
        study, ray_trainables.SPACE, metric="val_accuracy", max_iterations=2, scheduler=scheduler
    )
    tuner = tune.Tuner(
        ray_trainables.epochs_or_crash,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            metric="val_accuracy",
            mode="max",
            num_samples=4,
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
    )
    tuner.fit()
    exploded, learned, blocked, crashed = _stored(storage)
    assert [t.state for t in (exploded, learned, blocked, crashed)] == [
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    assert exploded.user_attrs["pruned_by"] == "rules"
    assert exploded.user_attrs["instability"] in ("exploded", "non-finite")
    assert exploded.user_attrs["diverged_at_step"] <= 4
    assert sorted(learned.intermediate_values) == [1, 2]
    assert learned.value == learned.intermediate_values[2] > 0.5
    assert blocked.user_attrs["pruned_by"] == "memory"
    assert blocked.intermediate_values == {}
    assert crashed.user_attrs["error"] == "RuntimeError: a trial whose code raises"


@pytest.mark.parametrize("as_url", [True, False], ids=["url", "storage-object"])
def test_from_storage_accepts_a_url_or_a_storage_and_reuses_the_study(
    tmp_path: Path, as_url: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    storage = url if as_url else optuna.storages.RDBStorage(url)
    first = StudySearcher.from_storage(storage, "r", SPACE, metric="val_accuracy")
    first.suggest("t1")
    again = StudySearcher.from_storage(url, "r", SPACE, metric="val_accuracy")
    assert again.study.study_name == "r" and len(again.study.trials) == 1
    with pytest.raises(TypeError, match=r"storage must be a storage URL or an optuna"):
        StudySearcher.from_storage(42, "r", SPACE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"direction must be one of"):
        StudySearcher.from_storage(url, "q", SPACE, direction="up")
