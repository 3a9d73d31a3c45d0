from __future__ import annotations

from collections.abc import Sized
from typing import Any, cast

import numpy as np
import pytest
import torch

from prl_tune.training import TASK_NAMES, TaskData, load_task
from prl_tune.training._digits import _digits_split

N_SAMPLES = 1797
N_VAL = 360  # ceil(0.2 * 1797)


def _epoch(loader: object) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)  # type: ignore[call-overload]
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _rows(inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(inputs.flatten(1).numpy(), axis=0, return_counts=True)


def test_digits_is_built_in() -> None:
    assert "digits" in TASK_NAMES


def test_shapes_and_types() -> None:
    task = load_task("digits")
    assert isinstance(task, TaskData)
    assert task.num_classes == 10
    inputs, targets = next(iter(task.train_loader))
    assert inputs.shape == (64, 1, 8, 8)
    assert inputs.dtype == torch.float32
    assert targets.shape == (64,)
    assert targets.dtype == torch.int64
    assert task.model(inputs).shape == (64, 10)


def test_mlp_takes_the_same_inputs() -> None:
    task = load_task("digits", model="mlp")
    inputs, _ = next(iter(task.train_loader))
    assert task.model(inputs).shape == (64, 10)
    assert sum(p.numel() for p in task.model.parameters()) == 64 * 128 + 128 + 128 * 10 + 10


def test_inputs_are_standardized() -> None:
    inputs, _ = _epoch(load_task("digits").train_loader)
    # With the training split's own mean and (population) standard deviation: exactly 0 and 1
    # up to float32 rounding (~1e-7).
    values = inputs.double()
    assert abs(values.mean().item()) < 1e-6
    assert values.std(correction=0).item() == pytest.approx(1.0, abs=1e-6)


def test_split_sizes_and_batches() -> None:
    task = load_task("digits", batch_size=100, val_fraction=0.25)
    train_inputs, _ = _epoch(task.train_loader)
    val_inputs, _ = _epoch(task.val_loader)
    assert len(val_inputs) == 450  # ceil(0.25 * 1797)
    assert len(train_inputs) == N_SAMPLES - 450
    assert len(cast(Sized, task.train_loader)) == 14  # 1347 samples: 13 full batches and one of 47
    assert [len(x) for x, _ in task.train_loader][-1] == 47


def test_split_is_stratified() -> None:
    task = load_task("digits")
    _, train_targets = _epoch(task.train_loader)
    _, val_targets = _epoch(task.val_loader)
    assert len(val_targets) == N_VAL
    train_share = torch.bincount(train_targets, minlength=10) / len(train_targets)
    val_share = torch.bincount(val_targets, minlength=10) / len(val_targets)
    assert torch.allclose(train_share, val_share, atol=0.005)


def test_split_does_not_depend_on_seed() -> None:
    val_a = _epoch(load_task("digits", seed=0).val_loader)
    val_b = _epoch(load_task("digits", seed=7).val_loader)
    assert torch.equal(val_a[0], val_b[0])
    assert torch.equal(val_a[1], val_b[1])


def test_every_epoch_serves_every_training_sample_once() -> None:
    task = load_task("digits", batch_size=50)
    first, first_targets = _epoch(task.train_loader)
    second, second_targets = _epoch(task.train_loader)
    assert len(first) == N_SAMPLES - N_VAL
    assert not torch.equal(first_targets, second_targets)  # reshuffled
    rows_a, counts_a = _rows(first)
    rows_b, counts_b = _rows(second)
    assert np.array_equal(rows_a, rows_b)
    assert np.array_equal(counts_a, counts_b)
    assert torch.equal(torch.bincount(first_targets), torch.bincount(second_targets))


def test_shuffle_is_deterministic_per_seed() -> None:
    loader_a = load_task("digits", seed=3).train_loader
    loader_b = load_task("digits", seed=3).train_loader
    loader_c = load_task("digits", seed=4).train_loader
    for _ in range(2):
        targets_a = _epoch(loader_a)[1]
        assert torch.equal(targets_a, _epoch(loader_b)[1])
        assert not torch.equal(targets_a, _epoch(loader_c)[1])


def test_model_init_depends_on_seed_only_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    weights = [
        torch.cat([p.flatten() for p in load_task("digits", seed=s).model.parameters()])
        for s in (0, 0, 1)
    ]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_arrays_are_loaded_once_per_process() -> None:
    load_task("digits")
    hits = _digits_split.cache_info().hits
    load_task("digits", seed=5, model="mlp")
    assert _digits_split.cache_info().hits == hits + 1


def test_tasks_do_not_share_their_tensors() -> None:
    first = load_task("digits")
    inputs, _ = _epoch(first.val_loader)
    next(iter(first.val_loader))[0].zero_()  # a task may change its own data...
    assert torch.equal(_epoch(load_task("digits").val_loader)[0], inputs)  # ...not the next's


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "resnet20"}, "model must be one of"),
        ({"batch_size": 0}, "batch_size must be >= 1 but got 0."),
        ({"batch_size": 32.0}, r"batch_size must be an integer >= 1 but got 32.0 \(float\)"),
        ({"val_fraction": 0.0}, r"val_fraction must be a finite number in \(0, 1\) but got 0.0"),
        ({"val_fraction": 1.0}, r"val_fraction must be a finite number in \(0, 1\) but got 1.0"),
        ({"val_fraction": 0.001}, "too few samples per class"),
        ({"batchsize": 32}, r"batchsize unknown key for task 'digits' \(did you mean 'batch_size'"),
    ],
)
def test_invalid_options_are_rejected(params: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        load_task("digits", **params)
