"""The ``[comparison]`` section and the protocol it plans (no training here)."""

from __future__ import annotations

import copy

import pytest

from prl_tune.compare import TEST_FRACTION, TRIAL_CAP_FACTOR, plan_comparison
from prl_tune.config import SpecError, StudySpec, spec_differences
from prl_tune.stability import OPTIONAL_RULES

VALID = {
    "study": {"name": "c", "n_trials": 14, "storage": "sqlite:///x.db", "seed": 3},
    "task": {"name": "digits", "epochs": 2, "params": {"model": "mlp"}},
    "optimizer": {"name": "sgd"},
    "space": {"schedulers": ["plrs", "cosine", "constant"], "lr_max": [0.01, 0.5]},
    "pruning": {"base": "median"},
}


def _spec(**comparison: object) -> StudySpec:
    data = copy.deepcopy(VALID)
    data["comparison"] = comparison
    return StudySpec.from_dict(data)


def test_defaults_share_the_budget_and_compare_against_plrs() -> None:
    plan = plan_comparison(StudySpec.from_dict(VALID))  # no [comparison] section: defaults
    assert plan.trials == 5  # 14 trials / 3 schedulers, rounded up
    assert plan.studies == 1 and len(plan.seeds) == 5 and plan.baseline == "plrs"
    assert plan.schedulers == ("plrs", "cosine", "constant")


def test_baseline_defaults_to_the_first_scheduler_without_plrs() -> None:
    data = copy.deepcopy(VALID)
    data["space"]["schedulers"] = ["cosine", "constant"]
    assert plan_comparison(StudySpec.from_dict(data)).baseline == "cosine"


def test_the_section_is_parsed_and_kept_apart_from_the_study_identity() -> None:
    spec = _spec(trials=4, seeds=3, studies=2, baseline="cosine")
    assert spec.comparison is not None and spec.comparison.trials == 4
    assert spec.to_dict()["comparison"]["baseline"] == "cosine"
    assert "comparison" not in StudySpec.from_dict(VALID).to_dict()  # no section: none stored
    # a study tuned without the section resumes with it, and with other values
    assert spec_differences(StudySpec.from_dict(VALID).to_dict(), spec.to_dict()) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seeds": 0}, "[comparison] seeds: must be >= 1 but got 0."),
        ({"seeds": 2.5}, "[comparison] seeds: must be an integer >= 1 but got 2.5 (float)."),
        ({"trials": 0}, "[comparison] trials: must be >= 1 or None but got 0."),
        ({"studies": 1001}, "[comparison] studies: must be <= 1000 (the evaluation seeds"),
        ({"baseline": "sgdr"}, "[comparison] baseline: must be one of the [space] schedulers"),
        ({"baseline": "onecycle"}, "['plrs', 'cosine', 'constant'] but got 'onecycle'."),
        ({"seed": 3}, "[comparison] seed: unknown key (did you mean 'seeds'?)"),
        ({"budget": "epochs"}, "[comparison] budget: must be one of ['trials', 'steps'] but got"),
        ({"budget": "steps", "steps": 0}, "[comparison] steps: must be >= 1 or None but got 0."),
        ({"budget": "steps", "steps": 2.5}, "[comparison] steps: must be an integer >= 1 or None"),
        ({"steps": 500}, '[comparison] steps: is the step budget, read only with budget = "steps"'),
    ],
)
def test_bad_values_name_the_key_the_rule_and_the_value(values: dict, message: str) -> None:
    with pytest.raises(SpecError) as error:
        _spec(**values)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_each_scheduler_gets_its_own_tuning_study_with_the_same_budget_and_seed() -> None:
    plan = plan_comparison(_spec(trials=4, studies=2))
    for repeat in range(2):
        specs = [plan.tuning_spec(s, repeat) for s in plan.schedulers]
        assert [s.name for s in specs] == [f"c/{s}/tuning-{repeat}" for s in plan.schedulers]
        assert [s.schedulers for s in specs] == [(s,) for s in plan.schedulers]
        assert {s.n_trials for s in specs} == {4}
        assert {s.seed for s in specs} == {3 + repeat}
        assert {s.study.sampler for s in specs} == {"tpe"}
        assert {s.pruning.base for s in specs} == {"median"}
        assert {s.space.lr_param(s.schedulers[0]) for s in specs} == {"lr"}  # type: ignore[union-attr]


def test_a_trial_budget_plans_no_steps() -> None:
    plan = plan_comparison(_spec(trials=4))
    assert plan.budget == "trials" and plan.step_budget is None and plan.trial_steps is None
    assert plan.tuning_trials == 4


def test_a_step_budget_defaults_to_what_the_trials_cost_at_full_length() -> None:
    plan = plan_comparison(_spec(trials=4, budget="steps"))
    # digits with a test split held out: 1,077 training samples in batches of 64, 2 epochs
    assert plan.trial_steps == 2 * 17
    assert plan.step_budget == 4 * 34
    # trials that cost no steps (blocked by the memory) cannot run forever: a cap
    assert plan.tuning_trials == TRIAL_CAP_FACTOR * 4
    assert {plan.tuning_spec(s, 0).n_trials for s in plan.schedulers} == {TRIAL_CAP_FACTOR * 4}


def test_a_step_budget_in_steps_is_taken_as_it_is() -> None:
    plan = plan_comparison(_spec(budget="steps", steps=100))
    assert plan.step_budget == 100 and plan.trial_steps == 34
    assert plan.tuning_trials == TRIAL_CAP_FACTOR * 3  # 100 steps pay for 3 trials (rounded up)
    spec = _spec(budget="steps", steps=100)
    # the budget is no part of a study's identity: a comparison may change it between runs
    assert spec_differences(StudySpec.from_dict(VALID).to_dict(), spec.to_dict()) == []


def test_evaluation_seeds_differ_from_every_tuning_seed() -> None:
    plan = plan_comparison(_spec(seeds=5, studies=3))
    assert plan.tuning_seeds == (3, 4, 5)
    assert plan.seeds == (1003, 1004, 1005, 1006, 1007)
    assert not set(plan.seeds) & set(plan.tuning_seeds)
    run = plan.run_spec(plan.tuning_spec("plrs", 0), plan.seeds[0])
    assert run.seed == 1003 and run.pruning.base == "none"
    # no pruning: the optional rules are off, only the non-finite stop remains
    assert all(getattr(run.rules, rule) is None for rule in OPTIONAL_RULES)
    assert run.rules.nonfinite


def test_a_builtin_task_gets_a_test_split_in_tuning_and_evaluation() -> None:
    plan = plan_comparison(_spec())
    assert plan.test_split
    assert plan.tuning_spec("plrs", 0).task.params["test_fraction"] == TEST_FRACTION
    assert plan.evaluation_spec().task.params["test_fraction"] == TEST_FRACTION
    data = copy.deepcopy(VALID)
    data["task"]["params"]["test_fraction"] = 0.3
    assert plan_comparison(StudySpec.from_dict(data)).spec.task.params["test_fraction"] == 0.3


def test_a_test_fraction_of_zero_is_refused() -> None:
    data = copy.deepcopy(VALID)
    data["task"]["params"]["test_fraction"] = 0
    with pytest.raises(SpecError, match=r"^\[task\] params.test_fraction: prl-tune compare"):
        plan_comparison(StudySpec.from_dict(data))


def test_a_user_task_keeps_its_params() -> None:
    data = copy.deepcopy(VALID)
    data["task"] = {"name": "fixtures.compare_tasks:counted_test", "epochs": 1}
    plan = plan_comparison(StudySpec.from_dict(data))
    assert not plan.test_split and "test_fraction" not in plan.spec.task.params


def test_welch_interval_is_scipys_and_none_where_it_cannot_be_computed() -> None:
    from scipy import stats

    from prl_tune.compare import welch_interval

    a, b = [0.95, 0.97, 0.96, 0.94], [0.93, 0.96, 0.92]
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_interval(a, b) == pytest.approx((expected.low, expected.high), rel=1e-12)
    assert welch_interval([0.9], b) is None  # one score: no spread to estimate
    assert welch_interval([0.9, 0.9], [0.9, 0.9]) is None  # no spread on either side
    low, high = welch_interval([0.9, 0.9, 0.9], [0.91, 0.93, 0.92])  # type: ignore[misc]
    assert low < 0 < high
