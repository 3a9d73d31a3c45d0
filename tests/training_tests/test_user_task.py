from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from prl_tune.training import TaskData, load_task, train

BLOBS = "fixtures.user_tasks:blobs"


def test_user_task_is_called_with_seed_device_and_params() -> None:
    task = load_task("fixtures.user_tasks:echo", seed=7, width=3, depth="deep")
    assert task.model.received == {
        "seed": 7,
        "device": torch.device("cpu"),
        "width": 3,
        "depth": "deep",
    }


def test_user_task_gets_a_resolved_device() -> None:
    task = load_task("fixtures.user_tasks:echo", device="auto")
    assert isinstance(task.model.received["device"], torch.device)  # type: ignore[index]


def test_user_task_with_dataloaders_trains() -> None:
    task = load_task(BLOBS, seed=1, batch_size=16)
    assert isinstance(task.train_loader, DataLoader)
    seen: list[int] = []
    result = train(
        task,
        epochs=3,
        scheduler_params={"lr_min": 0.05, "lr_max": 0.1},
        device="cpu",
        on_epoch=lambda metrics: seen.append(metrics.epoch),
    )
    assert result.status == "completed"
    assert seen == [1, 2, 3]
    assert result.steps == 3 * 15  # 240 samples, batches of 16
    assert result.history[-1].val_accuracy >= 0.95


def test_user_task_with_dataloaders_is_deterministic() -> None:
    def history() -> list[tuple[float, float]]:
        result = train(
            load_task(BLOBS, seed=2),
            epochs=2,
            scheduler="cosine",
            scheduler_params={"lr": 0.1},
            device="cpu",
            seed=2,
        )
        return [(m.train_loss, m.val_loss) for m in result.history]

    assert history() == history()


def test_errors_raised_by_the_user_task_propagate() -> None:
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_task("fixtures.user_tasks:broken")


def test_user_task_must_return_task_data() -> None:
    with pytest.raises(TypeError, match=r"must return a TaskData but returned \{'seed': 0\}"):
        load_task("fixtures.user_tasks:wrong_return")


def test_user_task_must_be_callable() -> None:
    with pytest.raises(TypeError, match="'NOT_A_FUNCTION' is a int"):
        load_task("fixtures.user_tasks:NOT_A_FUNCTION")


def test_missing_function_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"module 'fixtures\.user_tasks' has no function 'nothing_here'"
    ):
        load_task("fixtures.user_tasks:nothing_here")


def test_import_failure_names_the_module_and_the_error() -> None:
    with pytest.raises(
        ValueError, match=r"module 'fixtures\.missing_mod' cannot be imported \(No module"
    ):
        load_task("fixtures.missing_mod:task")


@pytest.mark.parametrize(
    "name",
    ["module:", ":function", "a:b:c", "my-package.tasks:load", "tasks:load()", "tasks.:load"],
)
def test_malformed_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"task must have the form 'package\.module:function'"):
        load_task(name)


@pytest.mark.parametrize("name", ["imagenet", "Digits", ""])
def test_unknown_built_in_lists_the_built_ins(name: str) -> None:
    built_ins = r"\('digits', 'shapes', 'cifar10', 'cifar100'\)"
    with pytest.raises(ValueError, match=rf"one of the built-in tasks {built_ins}"):
        load_task(name)


def test_task_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="task must be a str"):
        load_task(None)  # type: ignore[arg-type]


def test_task_data_checks_its_fields() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        TaskData(model="resnet", train_loader=[], val_loader=[])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        TaskData(model=torch.nn.Linear(1, 1), train_loader=[], val_loader=[], num_classes=1)
