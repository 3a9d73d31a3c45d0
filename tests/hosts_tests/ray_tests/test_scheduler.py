"""``InstabilityScheduler`` on a real local Ray cluster, with real torch training in the trials."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixtures import ray_trainables
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from prl_tune import InstabilityScheduler, PLRSSpace, SchedulerSpace, StabilityRules
from prl_tune.hosts.ray import StopRecord
from prl_tune.stability import RangeRecord

CHANCE = math.log(10)


def _fit(
    trainable: Any, param_space: dict[str, Any], scheduler: InstabilityScheduler, tmp_path: Path
) -> tune.ResultGrid:
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler, metric="step", mode="max", max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    return tuner.fit()


def _by_lr_max(grid: tune.ResultGrid) -> dict[float, tune.Result]:
    return {float(r.config["lr_max"]): r for r in grid}


@pytest.mark.slow
def test_rules_stop_a_diverging_trial_and_the_memory_blocks_a_dominated_one(
    local_ray: None, tmp_path: Path
) -> None:
    scheduler = InstabilityScheduler(
        ASHAScheduler(time_attr="step", max_t=ray_trainables.STEPS, grace_period=1),
        space=ray_trainables.SPACE,
        chance_loss=CHANCE,
    )
    # In this order, one at a time: explodes; stable; dominates the first (blocked); smaller
    # lr_min than the first, so not dominated: it runs and explodes too.
    lr_maxes = [5.0, 0.05, 8.0, 6.0]
    ratios = [0.8, 0.8, 0.9, 0.1]
    grid = _fit(
        ray_trainables.per_step_sgd,
        {
            "lr_max": tune.grid_search(lr_maxes),
            "lr_min_ratio": tune.sample_from(
                lambda config: ratios[lr_maxes.index(config["lr_max"])]
            ),
        },
        scheduler,
        tmp_path,
    )
    results = _by_lr_max(grid)
    assert set(results) == set(lr_maxes)
    for result in results.values():
        assert result.error is None
    # Exploded within the first steps (the trainable would have run 40).
    exploded = results[5.0].metrics
    assert exploded["step"] <= 4
    # The stable run ran to the end: the rules did not stop it, nor did ASHA (it is the best
    # by "step" at every rung).
    assert results[0.05].metrics["step"] == ray_trainables.STEPS
    # The dominated range never reported a result: it was stopped before it started, and
    # its result says why.
    blocked = results[8.0].metrics
    assert "step" not in blocked
    assert blocked["pruned_by"] == "memory"
    assert blocked["unstable"] is True
    assert results[6.0].metrics["step"] <= 4

    stopped = list(scheduler.stopped.values())
    by_rules = [s for s in stopped if s.pruned_by == "rules"]
    by_memory = [s for s in stopped if s.pruned_by == "memory"]
    assert len(by_rules) == 2
    assert {s.kind for s in by_rules} <= {"exploded", "non-finite"}
    assert all(s.step is not None and s.step <= 4 for s in by_rules)
    assert len(by_memory) == 1
    assert by_memory[0].reason.startswith("memory: range at least as aggressive as unstable trial")
    assert "lr_max=5" in by_memory[0].reason
    # The boundary: the largest stable lr_max and the smallest unstable one.
    assert list(scheduler.boundary().values()) == [(0.05, 5.0)]
    assert "2 trials stopped as unstable, 1 blocked by the memory" in scheduler.debug_string()


@pytest.mark.slow
def test_a_trial_that_reports_itself_unstable_teaches_the_memory(
    local_ray: None, tmp_path: Path
) -> None:
    scheduler = InstabilityScheduler(space=ray_trainables.SPACE, chance_loss=CHANCE)
    grid = _fit(
        ray_trainables.prl_tune_loop,
        {"lr_max": tune.grid_search([7.0, 0.1, 9.0]), "lr_min_ratio": 0.8},
        scheduler,
        tmp_path,
    )
    results = _by_lr_max(grid)
    unstable = results[7.0].metrics
    assert unstable["unstable"] is True
    assert unstable["instability"] in ("exploded", "non-finite")
    assert unstable["prune_reason"]
    assert results[0.1].metrics["val_accuracy"] > 0.5  # it learned, two epochs
    assert results[9.0].metrics["pruned_by"] == "memory"
    assert "step" not in results[9.0].metrics
    kinds = sorted(s.pruned_by for s in scheduler.stopped.values())
    assert kinds == ["memory", "rules"]


# --- without a cluster: ranges, arguments, state -------------------------------------------


def test_ranges_are_read_through_the_space_and_the_rest_is_context() -> None:
    scheduler = InstabilityScheduler(space=PLRSSpace(lr_max=(1e-3, 10.0)))
    low, high, context = scheduler.lr_range({"lr_max": 2.0, "lr_min_ratio": 0.25, "wd": 1e-4})
    assert (low, high) == (0.5, 2.0)
    assert context == (("scheduler", "plrs"), ("wd", 1e-4))
    assert scheduler.lr_range({"lr": 1.0}) is None  # not a PLRSSpace config

    plain = InstabilityScheduler()
    assert plain.lr_range({"lr_min": 0.1, "lr_max": 0.2, "model": {"width": 8}}) == (
        0.1,
        0.2,
        (("scheduler", "plrs"), ("model", (("width", 8),))),
    )
    assert plain.lr_range({"lr": 0.3}) == (0.3, 0.3, (("scheduler", "plrs"),))
    assert plain.lr_range({"momentum": 0.9}) is None


def test_a_scheduler_space_keeps_the_scheduler_in_the_context() -> None:
    space = SchedulerSpace(["plrs", "cosine"], lr=(1e-3, 10.0))
    scheduler = InstabilityScheduler(space=space)
    config = {"scheduler": "cosine", "cosine_lr": 0.5, "plrs_lr_max": 3.0, "plrs_lr_min_ratio": 0.5}
    assert scheduler.lr_range(config) == (0.5, 0.5, (("scheduler", "cosine"),))
    plrs = {**config, "scheduler": "plrs"}
    assert scheduler.lr_range(plrs) == (1.5, 3.0, (("scheduler", "plrs"),))


def test_searched_plrs_choices_are_context_of_plrs_ranges_only() -> None:
    plrs_space = PLRSSpace(draw_every=["step", "epoch"])
    space = SchedulerSpace(["plrs", "cosine"], plrs=plrs_space, lr=(1e-3, 10.0))
    scheduler = InstabilityScheduler(space=space)
    # Ray samples the flat space: a cosine config holds PLRS's inactive choice too.
    config = {"cosine_lr": 0.5, "plrs_lr_max": 3.0, "plrs_lr_min_ratio": 0.5}
    config["plrs_draw_every"] = "epoch"
    cosine = scheduler.lr_range({**config, "scheduler": "cosine"})
    assert cosine == (0.5, 0.5, (("scheduler", "cosine"),))
    plrs = scheduler.lr_range({**config, "scheduler": "plrs"})
    assert plrs == (1.5, 3.0, (("scheduler", "plrs"), ("plrs_draw_every", "epoch")))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"base": "asha"}, TypeError, "base must be a ray.tune TrialScheduler or None"),
        ({"space": {"lr_max": 1}}, TypeError, "space must be a PLRSSpace, SchedulerSpace or None"),
        ({"rules": {"check_every": 1}}, TypeError, "rules must be a StabilityRules or None"),
        ({"memory": "always"}, ValueError, "memory must be one of"),
        ({"loss": ""}, ValueError, "loss must be a non-empty result key but got ''."),
        ({"chance_loss": -1.0}, ValueError, "chance_loss must be a finite number > 0"),
        ({"chance_loss": math.nan}, ValueError, "chance_loss must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_rejected_by_name(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        InstabilityScheduler(**kwargs)


def test_the_memory_and_monitors_survive_save_and_restore(tmp_path: Path) -> None:
    rules = StabilityRules(explode_factor=10.0)
    scheduler = InstabilityScheduler(FIFOScheduler(), rules=rules, chance_loss=CHANCE)
    scheduler.memory.add(RangeRecord(1.0, 2.0, True, (("scheduler", "plrs"),), 3))
    scheduler.stopped["t_00003"] = StopRecord("rules", "exploded", "exploded", 2)
    path = str(tmp_path / "scheduler.pkl")
    scheduler.save(path)
    again = InstabilityScheduler(FIFOScheduler(), rules=rules, chance_loss=CHANCE)
    again.restore(path)
    assert again.memory.records == scheduler.memory.records
    assert again.stopped == scheduler.stopped
    assert again.blocker({"lr_min": 1.5, "lr_max": 2.5}) is not None
    assert again.blocker({"lr_min": 0.5, "lr_max": 2.5}) is None


def test_debug_string_reports_an_overlap_as_an_overlap() -> None:
    from prl_tune.stability import RangeRecord

    scheduler = InstabilityScheduler()
    context = scheduler.lr_range({"lr_min": 0.1, "lr_max": 0.2})[2]  # type: ignore[index]
    scheduler.memory.add(RangeRecord(0.01, 0.349, True, context, 1))
    scheduler.memory.add(RangeRecord(0.5, 0.552, False, context, 2))
    text = scheduler.debug_string()
    assert "stability overlap" in text and "between 0.349 and 0.552 both were seen" in text
    assert "stability boundary" not in text
    scheduler.memory.records.pop()
    scheduler.memory.add(RangeRecord(0.1, 0.2, False, context, 3))
    assert "stable up to lr_max 0.2, unstable from lr_max 0.349" in scheduler.debug_string()


# --- per-step losses in the results, without a cluster -------------------------------------

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
NAN = math.nan
_RAW = {"smoothing": 1.0, "collapse_smoothing": 1.0}  # running losses = the step losses

# Per kind: the rules, the chance level, each result's ``loss`` (8 steps a result), the step
# at which the rule fires, and a part of the reason.
_LIST_FIRES: dict[str, tuple[dict[str, Any], float | None, list[Any], int, str]] = {
    # steps 1-8, then 9, 10, 11 = NaN
    "non-finite": ({}, None, [[2.0] * 8, [2.0, 2.0, NAN, *[2.0] * 5]], 11, "(nan) at step 11"),
    # from step 9 on 30.0: the running loss is 30 - 28 x 0.9^k after k such steps, 19.2 at
    # step 17 (k = 9) and 20.2 at step 18 (k = 10), above 10 x the first step's 2.0
    "exploded": ({}, None, [[2.0] * 8, [30.0] * 8, [30.0] * 8], 18, "at step 18"),
    # a spike at step 9 (above 2 x chance), at chance from step 10: the 16th step is 25
    "collapsed": (
        {**_RAW, "collapse_window": 16},
        CHANCE,
        [[CHANCE] * 8, [10.0, *[CHANCE] * 7], [CHANCE] * 8, [CHANCE] * 8],
        25,
        "for 16 steps after a spike to 10 at step 9",
    ),
    # 3.0 from step 9, above 5 x the best before the window (0.5): the window of 8 steps
    # holds only 3.0 at step 16, the last step of the second result
    "rising": (
        {**_RAW, "rise_window": 8},
        None,
        [[2.0, 1.0, *[0.5] * 6], [3.0] * 8],
        16,
        "(steps 9-16)",
    ),
}


def _trial(**config: Any) -> Trial:
    return Trial("__fake", config=config, stub=True)


def _report(scheduler: InstabilityScheduler, trial: Trial, losses: list[Any]) -> list[str]:
    """Each loss as one result, until the scheduler says STOP; its decisions."""
    decisions: list[str] = []
    for loss in losses:
        decisions.append(scheduler.on_trial_result(None, trial, {"loss": loss}))
        if decisions[-1] == STOP:
            break
    return decisions


@pytest.mark.parametrize("kind", sorted(_LIST_FIRES))
def test_a_verdict_inside_a_list_of_step_losses_is_at_its_step(kind: str) -> None:
    rules, chance, results, step, fragment = _LIST_FIRES[kind]
    scheduler = InstabilityScheduler(rules=StabilityRules(**rules), chance_loss=chance)
    trial = _trial()
    assert _report(scheduler, trial, results) == [CONTINUE] * (len(results) - 1) + [STOP]
    stop = scheduler.stopped[trial.trial_id]
    assert (stop.pruned_by, stop.kind, stop.step) == ("rules", kind, step)
    assert fragment in stop.reason
    # later results of a stopped trial are not judged again
    assert scheduler.on_trial_result(None, trial, {"loss": [2.0]}) == STOP
    assert scheduler.stopped[trial.trial_id] == stop


def test_without_the_chance_level_a_collapse_in_the_lists_runs_on() -> None:
    rules, _, results, _, _ = _LIST_FIRES["collapsed"]
    scheduler = InstabilityScheduler(rules=StabilityRules(**rules))
    trial = _trial()
    assert _report(scheduler, trial, results) == [CONTINUE] * len(results)
    assert scheduler.stopped == {}


@pytest.mark.parametrize(
    "as_sent",
    [
        pytest.param(list, id="list"),
        pytest.param(tuple, id="tuple"),
        pytest.param(np.array, id="numpy"),
        pytest.param(torch.tensor, id="torch"),
        pytest.param(lambda xs: [torch.tensor(x) for x in xs], id="list-of-0d-tensors"),
    ],
)
def test_steps_are_numbered_across_floats_and_sequences(as_sent: Any) -> None:
    scheduler = InstabilityScheduler()
    trial = _trial()
    # step 1; steps 2-4; no loss (no step); steps 5-7, NaN at 7
    results = [{"loss": 2.0}, {"loss": as_sent([2.0, 1.9, 1.8])}, {"other": 1.0}]
    results.append({"loss": as_sent([1.7, 1.6, NAN])})
    decisions = [scheduler.on_trial_result(None, trial, result) for result in results]
    assert decisions == [CONTINUE, CONTINUE, CONTINUE, STOP]
    assert scheduler.stopped[trial.trial_id] == StopRecord(
        "rules", "non-finite training loss (nan) at step 7", "non-finite", 7
    )


def test_an_entry_that_is_not_a_number_keeps_its_step() -> None:
    scheduler = InstabilityScheduler()
    trial = _trial()
    assert _report(scheduler, trial, [[2.0, None, 2.0, "x"], [None, NAN]]) == [CONTINUE, STOP]
    assert scheduler.stopped[trial.trial_id].step == 6


def test_each_trial_counts_its_own_steps() -> None:
    scheduler = InstabilityScheduler()
    first, second = _trial(), _trial()
    assert scheduler.on_trial_result(None, first, {"loss": [2.0] * 8}) == CONTINUE
    assert scheduler.on_trial_result(None, second, {"loss": [2.0] * 3}) == CONTINUE
    assert scheduler.on_trial_result(None, first, {"loss": [2.0, NAN]}) == STOP
    assert scheduler.on_trial_result(None, second, {"loss": [NAN]}) == STOP
    assert scheduler.stopped[first.trial_id].step == 10
    assert scheduler.stopped[second.trial_id].step == 4
    # a trial that ends forgets its steps: its id is judged from step 1 again
    scheduler.on_trial_remove(None, first)
    scheduler.stopped.clear()
    assert scheduler.on_trial_result(None, first, {"loss": [NAN]}) == STOP
    assert scheduler.stopped[first.trial_id].step == 1


def test_the_step_count_survives_save_and_restore(tmp_path: Path) -> None:
    rules, chance, results, step, _ = _LIST_FIRES["collapsed"]
    scheduler = InstabilityScheduler(rules=StabilityRules(**rules), chance_loss=chance)
    trial = _trial()
    assert _report(scheduler, trial, results[:-1]) == [CONTINUE] * (len(results) - 1)
    path = str(tmp_path / "scheduler.pkl")
    scheduler.save(path)
    again = InstabilityScheduler(rules=StabilityRules(**rules), chance_loss=chance)
    again.restore(path)
    assert again.on_trial_result(None, trial, {"loss": results[-1]}) == STOP
    assert again.stopped[trial.trial_id].step == step
