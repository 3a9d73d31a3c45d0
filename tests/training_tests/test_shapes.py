"""The built-in ``shapes`` task: generated data, its split and label noise, its options, and a
short run that learns. Most tests use 1000 images (the default is 10000) to stay fast."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from prl_tune.cli import main
from prl_tune.config import load_spec
from prl_tune.training import SHAPES, TASK_NAMES, ShapesOptions, TaskData, load_task, train
from prl_tune.training._shapes import _shapes_split

SMALL = {"samples": 1000, "test_fraction": 0.2}  # 600 / 200 / 200 images
STUDY = Path(__file__).parents[2] / "studies" / "scheduler-comparison-hard.toml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _epoch(loader: object) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)  # type: ignore[call-overload]
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _splits(task: TaskData) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [_epoch(loader) for loader in (task.train_loader, task.val_loader, task.test_loader)]


def test_shapes_is_built_in_with_ten_classes() -> None:
    assert "shapes" in TASK_NAMES
    assert len(SHAPES) == 10
    task = load_task("shapes", **SMALL)
    assert isinstance(task, TaskData)
    assert task.num_classes == 10
    inputs, targets = next(iter(task.train_loader))
    assert inputs.shape == (64, 1, 16, 16) and inputs.dtype == torch.float32
    assert targets.shape == (64,) and targets.dtype == torch.int64
    assert task.model(inputs).shape == (64, 10)
    assert load_task("shapes", model="mlp", **SMALL).model(inputs).shape == (64, 10)


def test_the_default_split_is_6000_2000_2000_with_a_test_fraction() -> None:
    x_train, _, x_val, _, x_test, _ = _shapes_split(10000, 0.05, 0.3, 0.2, 0.2)
    assert (len(x_train), len(x_val), len(x_test)) == (6000, 2000, 2000)
    assert load_task("shapes", samples=1000).test_loader is None  # tune's split: no test


def test_the_data_do_not_depend_on_the_seed_but_the_model_does() -> None:
    state = torch.get_rng_state()
    first, second = load_task("shapes", seed=0, **SMALL), load_task("shapes", seed=7, **SMALL)
    assert torch.equal(torch.get_rng_state(), state)
    _shapes_split.cache_clear()  # generated afresh: the same images and labels again
    third = load_task("shapes", seed=0, **SMALL)
    for task in (second, third):
        for (x_a, y_a), (x_b, y_b) in zip(_splits(first), _splits(task), strict=True):
            assert torch.equal(x_a.sort(0).values, x_b.sort(0).values)  # shuffled: same rows
            assert torch.equal(y_a.sort().values, y_b.sort().values)
    weights = [
        torch.cat([p.flatten() for p in task.model.parameters()]) for task in (first, second, third)
    ]
    assert torch.equal(weights[0], weights[2])
    assert not torch.equal(weights[0], weights[1])


def test_the_splits_are_disjoint_and_stratified() -> None:
    task = load_task("shapes", label_noise=0.0, **SMALL)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _splits(task)
    assert (len(y_train), len(y_val), len(y_test)) == (600, 200, 200)
    rows = [{tuple(row) for row in x.flatten(1).tolist()} for x in (x_train, x_val, x_test)]
    assert sum(len(r) for r in rows) == 1000  # every image distinct...
    assert len(rows[0] | rows[1] | rows[2]) == 1000  # ...and in exactly one split
    for targets, per_class in ((y_train, 60), (y_val, 20), (y_test, 20)):
        assert torch.bincount(targets, minlength=10).tolist() == [per_class] * 10


def test_label_noise_corrupts_exactly_that_share_of_the_training_labels_only() -> None:
    clean = _shapes_split(1000, 0.05, 0.0, 0.2, 0.2)
    noisy = _shapes_split(1000, 0.05, 0.3, 0.2, 0.2)
    for index in (0, 2, 3, 4, 5):  # the images, and the validation and test labels
        assert np.array_equal(clean[index], noisy[index])
    wrong = clean[1] != noisy[1]
    assert wrong.sum() == 180  # 30% of 600, each moved to another class
    assert len(np.unique(noisy[1][wrong])) == 10


def test_inputs_are_standardized_on_the_training_split() -> None:
    values = _epoch(load_task("shapes", **SMALL).train_loader)[0].double()
    assert abs(values.mean().item()) < 1e-6
    assert values.std(correction=0).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "resnet"}, r"model must be one of \['cnn', 'mlp'\] but got 'resnet'"),
        ({"batch_size": 0}, "batch_size must be >= 1 but got 0."),
        ({"val_fraction": 1.0}, r"val_fraction must be a finite number in \(0, 1\) but got 1.0"),
        ({"test_fraction": 0.8}, "test_fraction must leave training samples"),
        ({"samples": 50}, "samples must be >= 100 but got 50."),
        ({"samples": 1e4}, r"samples must be an integer >= 100 but got 10000.0 \(float\)"),
        ({"noise": -0.1}, "noise must be a finite number >= 0 but got -0.1."),
        ({"label_noise": 0.9}, r"label_noise must be a finite number in \[0, 0.9\) but got 0.9."),
        (
            {"samples": 100, "val_fraction": 0.05},
            r"val_fraction must hold at least 10 of the 100 samples \(one per class\) but got "
            r"0.05 \(5 samples\).",
        ),
        (
            {"samples": 100, "test_fraction": 0.05},
            r"test_fraction must hold at least 10 of the 100 samples",
        ),
        (
            {"samples": 100, "val_fraction": 0.5, "test_fraction": 0.45},
            r"val_fraction must leave at least 10 training samples \(one per class\) but got 0.5 "
            r"with test_fraction 0.45 \(5 of 100 samples\).",
        ),
        ({"sample": 100}, r"sample unknown key for task 'shapes' \(did you mean 'samples'"),
    ],
)
def test_invalid_options_are_one_line_errors_naming_the_option(
    params: dict[str, Any], match: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=match) as error:
        load_task("shapes", **params)
    assert "\n" not in str(error.value)


def test_options_are_checked_without_loading() -> None:
    options = ShapesOptions(samples=2000, noise=0, label_noise=0)
    assert (options.noise, options.label_noise) == (0.0, 0.0)
    assert isinstance(options.noise, float)


def test_a_short_run_learns_well_above_chance() -> None:
    task = load_task("shapes", batch_size=16, label_noise=0.0, **SMALL)
    result = train(task, epochs=3, scheduler="knee", scheduler_params={"lr": 0.05}, device="cpu")
    assert result.status == "completed"
    # 0.41-0.52 over seeds 0-3 (600 training images, 114 steps); chance is 0.1
    assert result.test_accuracy is not None and result.test_accuracy > 0.3


def test_the_hard_comparison_study_runs_through_compare(tmp_path: Path) -> None:
    spec = load_spec(STUDY)
    assert spec.task.name == "shapes"
    assert spec.comparison is not None
    assert (spec.comparison.trials, spec.comparison.seeds) == (8, 3)
    assert len(spec.schedulers) == 6
    storage = f"sqlite:///{tmp_path / 'hard.db'}"
    args = ["compare", str(STUDY), "--storage", storage, "--out", str(tmp_path / "t.md")]
    tiny = ["comparison.trials=1", "comparison.seeds=2", "task.epochs=1"]
    tiny += ["task.params.samples=500", 'task.params.model="mlp"']
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, "--quiet", *[f"--set={o}" for o in tiny]]) == 0
    runs = optuna.load_study(study_name=f"{spec.name}/evaluation", storage=storage).trials
    assert sorted(t.user_attrs["scheduler"] for t in runs) == sorted(spec.schedulers * 2)
    assert {t.user_attrs["scored_on"] for t in runs} == {"test"}
    table = (tmp_path / "t.md").read_text(encoding="utf-8")
    for scheduler in spec.schedulers:
        assert f"| {scheduler} " in table
