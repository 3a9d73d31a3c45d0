"""Checkpoint and resume of a training run: the resumed run is the uninterrupted one."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from fixtures.user_tasks import blobs

from prl_tune._checks import ArgumentValueError
from prl_tune.training import TrainResult, load_task, train

PLRS = {"lr_min": 0.05, "lr_max": 0.3}


def _run(
    task_name: str, *, resume: dict[str, Any] | None = None, scheduler: str = "plrs"
) -> tuple[TrainResult, dict[int, bytes]]:
    """Train 4 epochs; returns the result and each epoch's state as ``torch.save`` bytes."""
    task = blobs(seed=3, device=torch.device("cpu")) if task_name == "blobs" else None
    if task is None:
        task = load_task(task_name, seed=3, model="mlp")
    states: dict[int, bytes] = {}

    def keep(metrics: Any, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)  # what a checkpoint writes
        states[metrics.epoch] = buffer.getvalue()

    params = PLRS if scheduler == "plrs" else {"lr": 0.1}
    result = train(
        task,
        epochs=4,
        scheduler=scheduler,
        scheduler_params=params,
        seed=3,
        on_state=keep,
        resume=resume,
    )
    return result, states


def _load(data: bytes) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return state


@pytest.mark.parametrize(
    ("task_name", "scheduler"),
    [("digits", "plrs"), ("blobs", "plrs"), ("digits", "cosine")],
    ids=["digits-own-loader", "blobs-torch-dataloader", "digits-cosine"],
)
@pytest.mark.parametrize("after", [1, 3])
def test_a_resumed_run_equals_the_uninterrupted_one(
    task_name: str, scheduler: str, after: int
) -> None:
    full, states = _run(task_name, scheduler=scheduler)
    resumed, _ = _run(task_name, resume=_load(states[after]), scheduler=scheduler)
    # Every epoch (the ones before the checkpoint come from it), bit for bit: LRs drawn,
    # batches seen (shuffling state), losses and accuracy.
    assert resumed.history == [
        m.__class__(**{**m.as_dict(), "seconds": r.seconds})
        for m, r in zip(full.history, resumed.history, strict=True)
    ]
    assert resumed.steps == full.steps
    assert resumed.lr_tail == full.lr_tail and resumed.loss_tail == full.loss_tail


def test_a_run_resumed_after_its_last_epoch_trains_no_more() -> None:
    full, states = _run("digits")
    again, more = _run("digits", resume=_load(states[4]))
    assert again.history == full.history and again.steps == full.steps
    assert more == {}


def test_a_state_that_is_not_from_on_state_is_refused() -> None:
    task = load_task("digits", seed=0, model="mlp")
    with pytest.raises(ArgumentValueError, match=r"resume must be a state from on_state"):
        train(task, epochs=1, scheduler_params=PLRS, resume={"epoch": 1})
