"""A task's test split: digits' ``test_fraction`` and ``train``'s one evaluation after the end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures import compare_tasks
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from prl_tune.training import DigitsOptions, load_task, train
from prl_tune.training._digits import _digits_split, split_indices


def test_without_a_test_fraction_the_split_is_the_one_it_always_was() -> None:
    data = load_digits()  # the split as it was computed before test_fraction existed
    images = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    x_train, x_val, y_train, y_val = train_test_split(
        images, data.target.astype(np.int64), test_size=0.2, stratify=data.target, random_state=0
    )
    mean, std = float(x_train.mean()), float(x_train.std())
    old = ((x_train - mean) / std, y_train, (x_val - mean) / std, y_val)
    new = _digits_split(0.2, 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(old, new[:4], strict=True))
    assert len(new[4]) == 0
    assert load_task("digits").test_loader is None


def test_the_three_digits_splits_are_disjoint_and_cover_every_sample() -> None:
    train_idx, val_idx, test_idx = split_indices(0.2, 0.2)
    assert (len(train_idx), len(val_idx), len(test_idx)) == (1077, 360, 360)
    assert not set(train_idx) & set(val_idx)
    assert not set(train_idx) & set(test_idx)
    assert not set(val_idx) & set(test_idx)
    assert len(set(train_idx) | set(val_idx) | set(test_idx)) == 1797
    task = load_task("digits", test_fraction=0.2)
    batches = list(task.test_loader)  # type: ignore[arg-type]
    assert sum(len(targets) for _, targets in batches) == 360
    assert set(torch.cat([t for _, t in batches]).tolist()) == set(range(10))  # stratified


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test_fraction": 1.0}, "test_fraction must be a finite number in [0, 1)"),
        ({"test_fraction": -0.1}, "test_fraction must be a finite number in [0, 1)"),
        ({"test_fraction": 0.5, "val_fraction": 0.5}, "must leave training samples"),
    ],
)
def test_bad_test_fractions_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        DigitsOptions(**options)


def test_train_scores_the_test_split_once_after_the_last_epoch() -> None:
    compare_tasks.TEST_PASSES.clear()
    task = compare_tasks.counted_test(seed=0, device=torch.device("cpu"))
    passes_during: list[int] = []
    result = train(
        task,
        epochs=2,
        scheduler="constant",
        scheduler_params={"lr": 0.1},
        on_epoch=lambda m: passes_during.append(len(compare_tasks.TEST_PASSES)),
    )
    assert passes_during == [0, 0]  # never during training
    assert compare_tasks.TEST_PASSES == [0]  # once, after the last epoch
    assert result.test_loss is not None and 0 < result.test_loss < 2
    assert result.test_accuracy is not None and 0 <= result.test_accuracy <= 1


def test_no_test_loader_or_no_test_evaluation_leaves_the_scores_unset() -> None:
    compare_tasks.TEST_PASSES.clear()
    params = {"scheduler": "constant", "scheduler_params": {"lr": 0.1}, "epochs": 1}
    result = train(compare_tasks.no_test(seed=0, device=torch.device("cpu")), **params)
    assert result.test_loss is None and result.test_accuracy is None
    task = compare_tasks.counted_test(seed=0, device=torch.device("cpu"))
    result = train(task, evaluate_test=False, **params)
    assert result.test_loss is None and compare_tasks.TEST_PASSES == []
