"""``train``'s speed options: bfloat16 autocast (``precision``), channels-last images and a
compiled forward pass. Each one trains the same model to about the same place; none changes a
run that does not ask for it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from prl_tune import load_task, train
from prl_tune.training import TrainResult

PLRS = {"lr_min": 0.05, "lr_max": 0.1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(model: str = "cnn", epochs: int = 2, **options: Any) -> tuple[TrainResult, Any]:
    task = load_task("digits", seed=0, device="cpu", model=model, batch_size=64)
    return train(task, epochs=epochs, scheduler_params=PLRS, device="cpu", **options), task


def test_auto_precision_on_a_cpu_is_float32_bit_for_bit() -> None:
    plain, _ = _train()
    auto, _ = _train(precision="auto")
    assert auto.history and [m.val_loss for m in auto.history] == [
        m.val_loss for m in plain.history
    ]
    assert auto.loss_tail == plain.loss_tail


def test_bf16_autocast_trains_in_bfloat16_to_about_the_same_accuracy() -> None:
    plain, _ = _train()
    half, task = _train(precision="bf16")
    assert half.status == "completed"
    assert half.loss_tail != plain.loss_tail  # the forward pass really ran in bfloat16
    # weights stay float32; the tolerance is ten times bfloat16's relative error on a loss
    assert all(p.dtype == torch.float32 for p in task.model.parameters())
    assert half.final.val_accuracy == pytest.approx(plain.final.val_accuracy, abs=0.03)
    assert half.final.val_loss == pytest.approx(plain.final.val_loss, rel=0.1)


@pytest.mark.parametrize("bad", ["fp16", "BF16", 16])
def test_an_unknown_precision_is_one_line_naming_it(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="precision") as caught:
        _train(precision=bad)
    assert "\n" not in str(caught.value)


def test_channels_last_keeps_conv_weights_channels_last_and_trains_the_same() -> None:
    plain, _ = _train()
    last, task = _train(channels_last=True)
    convs = [m for m in task.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    # Another memory order changes the summation order only: the same run up to rounding.
    for a, b in zip(last.history, plain.history, strict=True):
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3)


def test_a_compiled_forward_trains_the_same_and_its_checkpoint_resumes_without_compiling() -> None:
    # "aot_eager" traces the forward and backward graphs as inductor does, without generating
    # C++ (which takes a minute on a small CPU); compile=True is the same path with inductor.
    states: list[dict[str, Any]] = []
    compiled, _ = _train(model="mlp", compile="aot_eager", on_state=lambda _m, s: states.append(s))
    plain, _ = _train(model="mlp")
    for a, b in zip(compiled.history, plain.history, strict=True):
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3)
    assert not any("_orig_mod" in key for key in states[0]["model"])  # the module's own keys
    task = load_task("digits", seed=0, device="cpu", model="mlp", batch_size=64)
    resumed = train(task, epochs=2, scheduler_params=PLRS, device="cpu", resume=states[0])
    assert resumed.status == "completed" and len(resumed.history) == 2


@pytest.mark.parametrize("bad", ["no-such-backend", 1])
def test_an_unknown_compile_backend_is_one_line_naming_compile(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="compile") as caught:
        _train(compile=bad)
    assert "\n" not in str(caught.value)
