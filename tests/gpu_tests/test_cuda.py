"""CUDA-only behaviour: tensor LRs without host syncs, the loop's sync budget, GPU trials sharing
a card. Skipped on machines without a CUDA GPU (CI has none); run on a GPU machine."""

from __future__ import annotations

import warnings
from collections import Counter

import optuna
import pytest
import torch
from optuna.trial import TrialState

from prl_tune import PLRS, load_task, train
from prl_tune.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_tensor_lr_on_capturable_adam_is_updated_in_place_without_host_sync() -> None:
    model = torch.nn.Linear(32, 32).cuda()
    lr = torch.tensor(0.01, device="cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, capturable=True)
    scheduler = PLRS(optimizer, lr_min=0.001, lr_max=0.01, seed=0)
    x = torch.randn(64, 32, device="cuda")
    # warm up (first steps go through torch's base-class checks)
    for _ in range(3):
        model(x).square().mean().backward()
        optimizer.step()
        scheduler.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(200):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
            scheduler.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    group_lr = optimizer.param_groups[0]["lr"]
    assert group_lr is lr
    assert group_lr.item() == pytest.approx(scheduler.get_last_lr()[0], rel=1e-6)
    assert 0.001 <= scheduler.get_last_lr()[0] <= 0.01


@pytest.mark.parametrize(
    "options", [{}, {"precision": "bf16", "channels_last": True}], ids=["fp32", "bf16-cl"]
)
def test_training_loop_syncs_only_at_check_points(options) -> None:
    # The same schedule tests/training_tests/test_host_syncs.py counts on the CPU, measured by
    # CUDA's own sync detection: one sync per check and one per epoch's evaluation, no more.
    task = load_task("digits", seed=0, device="cuda", model="cnn", batch_size=64)
    checked: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            result = train(
                task,
                epochs=2,
                scheduler="plrs",
                scheduler_params={"lr_min": 0.05, "lr_max": 0.1},
                device="cuda",
                check_every=8,
                on_check=lambda step, _loss: checked.append(step),
                **options,
            )
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchronizing" in str(w.message) for w in caught)
    assert result.status == "completed"
    assert checked == [1, 2, 4, 8, 16, 23, 31, 39, 46]
    assert syncs <= len(checked) + 2  # checks + 2 evaluations; not one per step (46 steps)


def test_gpu_trials_share_one_card(write_study) -> None:
    path, storage = write_study(n_trials=6, study_extra="workers = 3", epochs=2)
    assert main(["tune", str(path), "--quiet", "--set", 'task.device="cuda"']) == 0
    trials = optuna.load_study(study_name="t", storage=storage).trials
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 6}
