from __future__ import annotations

import copy
from pathlib import Path

import pytest
from fixtures.cifar_files import write_cifar100

from prl_tune.config import SpecError, StudySpec, load_spec, parse_override, spec_differences
from prl_tune.space import PendingRangeTest
from prl_tune.stability import StabilityRules

VALID = {
    "study": {"name": "s", "n_trials": 3, "storage": "sqlite:///x.db"},
    "task": {"name": "digits", "epochs": 2, "params": {"model": "mlp"}},
    "optimizer": {"name": "sgd"},
    "space": {"lr_max": [0.001, 1.0]},
    "pruning": {"base": "median"},
}


def _with(section: str, key: str, value: object) -> dict:
    data = copy.deepcopy(VALID)
    data.setdefault(section, {})[key] = value
    return data


def test_defaults_are_filled_in() -> None:
    spec = StudySpec.from_dict(VALID)
    assert spec.direction == "maximize"
    assert spec.metric == "val_accuracy"
    assert spec.workers == 1
    assert spec.schedulers == ("plrs",)
    assert spec.space.plrs.lr_max == (0.001, 1.0)


def test_loss_metric_is_minimized() -> None:
    assert StudySpec.from_dict(_with("study", "metric", "val_loss")).direction == "minimize"


def test_every_study_file_in_the_repo_is_valid(tmp_path: Path) -> None:
    files = sorted((Path(__file__).parents[2] / "studies").glob("*.toml"))
    assert files
    for file in files:
        # A CIFAR study needs its data folder (checked when the file is read): a tiny one.
        data = {"task.params.root": str(write_cifar100(tmp_path))} if "cifar" in file.name else None
        load_spec(file, overrides=data)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_with("study", "n_trails", 3), "[study] n_trails: unknown key (did you mean 'n_trials'?)"),
        (_with("study", "n_trials", 0), "[study] n_trials: must be >= 1 but got 0"),
        (_with("study", "n_trials", "ten"), "[study] n_trials: must be an integer"),
        (_with("study", "n_trials", 2.5), "[study] n_trials: must be an integer"),
        (_with("study", "n_trials", True), "[study] n_trials: must be an integer"),
        (_with("study", "metric", "f1"), "[study] metric: must be one of"),
        (_with("study", "direction", "minimize"), "[study] direction: val_accuracy is to be"),
        (
            _with("task", "name", "mnist"),
            "[task] name: must be one of the built-in tasks ('digits', 'shapes', 'cifar10', "
            "'cifar100') or 'package.module:",
        ),
        (_with("task", "name", "no_such_module_xyz:make"), "[task] name: module"),
        (
            _with("task", "name", "json:no_such_function"),
            "[task] name: module 'json' has no function 'no_such_function'",
        ),
        (_with("task", "epochs", -1), "[task] epochs: must be >= 1"),
        (_with("task", "params", {"modle": "cnn"}), "[task.params] modle: unknown key"),
        (_with("task", "params", {"model": "resnet"}), "[task.params] model: must be one of"),
        (_with("task", "device", "tpu"), "[task] device"),
        (_with("optimizer", "name", "lion"), "[optimizer] name: must be one of"),
        (_with("optimizer", "momentum", 1.5), "[optimizer] momentum: must be"),
        (
            _with("optimizer", "grad_clip", 0),
            "[optimizer] grad_clip: must be a finite number > 0 or None but got 0.",
        ),
        (_with("optimizer", "betas", [0.9, 0.99]), "[optimizer] betas: applies to 'adamw' only"),
        (_with("space", "lr_max", [1.0, 0.1]), "[space] lr_max"),
        (_with("space", "lr_max", [-0.1, 0.1]), "[space] lr_max"),
        (
            _with("space", "lr_max", "wide"),
            "[space] lr_max: must be a [low, high] list, a number or",
        ),
        (_with("space", "lr_min", [0.5, 0.9]), "[space] lr_max: must not reach below lr_min"),
        (_with("space", "lr_min_ratio", [0.0, 2.0]), "[space] lr_min_ratio"),
        (_with("space", "schedulers", ["plrs", "sgdr"]), "[space] schedulers: each must be one"),
        (_with("pruning", "base", "successive"), "[pruning] base: must be one of"),
        (_with("pruning", "reduction_factor", 1), "[pruning] reduction_factor: must be >= 2"),
        (_with("pruning", "memory", "always"), "[pruning] memory: must be one of"),
        (_with("pruning", "rules", "yes"), "[pruning] rules: must be true, false or a table"),
        (_with("pruning", "rules", {"collapse_window": 0}), "[pruning.rules] collapse_window"),
        (
            _with("pruning", "rules", {"collapse_smoothing": 0}),
            "[pruning.rules] collapse_smoothing must be a finite number in (0, 1] but got 0.",
        ),
        (_with("pruning", "rules", {"windw": 3}), "[pruning.rules]"),
        (
            _with("space", "lr_max", "auto"),
            "[space] lr_max: must be a [low, high] list, a number or",
        ),
        ({**VALID, "extra": {}}, "[extra]: unknown section"),
        (_with("study", "backend", "dask"), "[study] backend: must be one of ['optuna', 'ray']"),
        (
            _with("study", "worker_restarts", -1),
            "[study] worker_restarts: must be >= 0 or None but got -1.",
        ),
        (_with("study", "workers_per_gpu", 0), "[study] workers_per_gpu: must be >= 1 but got 0."),
        (_with("ray", "cpus_per_trial", 0), "[ray] cpus_per_trial: must be a finite number > 0"),
        (_with("ray", "gpus_per_trial", -0.5), "[ray] gpus_per_trial: must be a finite number >="),
        (_with("ray", "gpus_per_trial", "1"), "[ray] gpus_per_trial: must be a finite number"),
        (_with("ray", "max_concurrent", 0), "[ray] max_concurrent: must be >= 1"),
        (_with("ray", "max_failures", -1), "[ray] max_failures: must be >= 0"),
        (_with("ray", "reuse_actors", "yes"), "[ray] reuse_actors: must be a bool"),
        (_with("ray", "address", " "), "[ray] address: must not be empty"),
        (_with("ray", "workers", 2), "[ray] workers: unknown key"),
        ({k: v for k, v in VALID.items() if k != "task"}, "[task]: required section is missing"),
    ],
)
def test_bad_fields_give_one_line_naming_field_rule_and_value(data: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(data)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_overrides_are_applied_and_validated(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text('[study]\nname = "s"\nn_trials = 4\n[task]\nepochs = 8\n', encoding="utf-8")
    spec = load_spec(file, overrides=dict([parse_override("task.epochs=2")]))
    assert spec.task.epochs == 2
    spec = load_spec(file, overrides=dict([parse_override("task.params.model=mlp")]))
    assert spec.task.params == {"model": "mlp"}
    with pytest.raises(SpecError, match=r"\[task\] epochs: must be >= 1 but got 0"):
        load_spec(file, overrides={"task.epochs": 0})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname=1", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_to_dict_round_trips() -> None:
    spec = StudySpec.from_dict(VALID)
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_pruning_rules_table_and_false_switches_a_rule_off() -> None:
    spec = StudySpec.from_dict(
        _with("pruning", "rules", {"collapse_window": False, "explode_factor": 20.0})
    )
    assert spec.rules == StabilityRules(collapse_window=None, explode_factor=20.0)
    off = StudySpec.from_dict(_with("pruning", "rules", False)).rules
    assert off == StabilityRules(
        explode_factor=None,
        sustain_factor=None,
        collapse_window=None,
        dead_window=None,
        rise_window=None,
    )
    assert StudySpec.from_dict(VALID).rules == StabilityRules()


def test_a_range_test_space_is_pending_until_resolved() -> None:
    spec = StudySpec.from_dict(_with("space", "lr_max", "range-test"))
    assert isinstance(spec.space, PendingRangeTest)
    resolved = spec.with_lr_max((0.1, 0.3))
    assert resolved.space.plrs.lr_max == (0.1, 0.3)
    assert resolved.to_dict()["space"]["lr_max"] == [0.1, 0.3]  # what worker processes load
    assert StudySpec.from_dict(resolved.to_dict()).space.plrs.lr_max == (0.1, 0.3)
    assert spec.to_dict()["space"]["lr_max"] == "range-test"  # what the store compares
    impossible = StudySpec.from_dict(
        {
            **_with("space", "lr_max", "range-test"),
            "space": {"lr_max": "range-test", "lr_min": [5.0, 10.0]},
        }
    )
    with pytest.raises(SpecError) as info:
        impossible.with_lr_max((0.1, 0.3))
    assert str(info.value) == (
        "[space] lr_max: must not reach below lr_min (every lr_max needs an lr_min <= it): low end "
        "of lr_max 0.1 < low end of lr_min 5. (lr_max [0.1, 0.3] from the LR range test)"
    )


def test_with_study_checks_the_change_and_keeps_the_rest() -> None:
    spec = StudySpec.from_dict(VALID)
    wider = spec.with_study(n_trials=9, workers=2)
    assert (wider.n_trials, wider.workers, wider.to_dict()["study"]["n_trials"]) == (9, 2, 9)
    assert wider.rules is spec.rules and wider.space is spec.space
    with pytest.raises(SpecError, match=r"^\[study\] workers: must be >= 1 but got 0\.$"):
        spec.with_study(workers=0)


def test_a_study_builds_its_rules_once_and_checks_lr_max_once(write_study, monkeypatch) -> None:
    """However many trials run, the file's values are checked where they are parsed, once."""
    import prl_tune._checks
    import prl_tune.space._plrs_space as plrs_space
    from prl_tune.cli import main

    built: list[StabilityRules] = []
    checked: list[object] = []
    post_init = StabilityRules.__post_init__
    number_range = prl_tune._checks.number_range

    def count_rules(self: StabilityRules) -> None:
        built.append(self)
        post_init(self)

    def count_ranges(name: str, value: object, **kwargs: object) -> tuple[float, float]:
        if name == "lr_max":
            checked.append(value)
        return number_range(name, value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(StabilityRules, "__post_init__", count_rules)
    monkeypatch.setattr(plrs_space, "number_range", count_ranges)
    path, _ = write_study(n_trials=3)
    assert main(["tune", str(path), "--quiet"]) == 0
    assert len(built) == 1
    assert checked == [[0.01, 0.5]]


def test_ray_section_defaults_and_changes() -> None:
    spec = StudySpec.from_dict(VALID)
    assert spec.study.backend == "optuna"
    assert (spec.ray.address, spec.ray.cpus_per_trial, spec.ray.gpus_per_trial) == (None, 1.0, 0.0)
    assert (spec.ray.max_concurrent, spec.ray.max_failures, spec.ray.reuse_actors) == (
        None,
        0,
        True,
    )
    changed = spec.with_ray(gpus_per_trial=0.25, max_concurrent=4)
    assert changed.ray.gpus_per_trial == 0.25 and changed.to_dict()["ray"]["max_concurrent"] == 4
    assert spec.ray.max_concurrent is None  # the original is untouched
    with pytest.raises(SpecError, match=r"^\[ray\] cpus_per_trial: must be a finite number > 0"):
        spec.with_ray(cpus_per_trial=-1)


def test_where_and_how_a_study_runs_may_change_between_runs() -> None:
    stored = StudySpec.from_dict(VALID).to_dict()
    moved = _with("study", "backend", "ray")
    moved["ray"] = {"address": "10.0.0.1:6379", "cpus_per_trial": 2, "max_concurrent": 3}
    assert spec_differences(stored, StudySpec.from_dict(moved).to_dict()) == []
    old = {section: dict(v) for section, v in stored.items() if section != "ray"}
    old["study"].pop("backend")  # a study stored before the Ray backend existed
    assert spec_differences(old, StudySpec.from_dict(VALID).to_dict()) == []
    other = StudySpec.from_dict(_with("task", "epochs", 3)).to_dict()
    assert spec_differences(stored, other) == ["[task] epochs: stored 2, now 3"]
