"""The training loop brings losses to the host only at its check points: counted on the CPU by
intercepting every tensor-to-host conversion (``item``, ``tolist``, ``float()``, ...), so the
claim is checked without a GPU (``tests/gpu_tests`` checks the same schedule with CUDA's own
sync detection)."""

from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from prl_tune import load_task, train

#: Tensor methods that copy a value to the host (a device sync on a GPU).
HOST_TRANSFERS = {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "numpy"}
_PACKAGE = Path(torch.__file__).parent  # frames inside torch are not the caller


class HostTransfers(TorchFunctionMode):
    """Counts host transfers by the prl_tune file and function that asked for them."""

    def __init__(self) -> None:
        super().__init__()
        self.by_caller: Counter[str] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") in HOST_TRANSFERS:
            frames = traceback.extract_stack()[:-1]
            mine = [f for f in frames if "prl_tune" in f.filename and "tests" not in f.filename]
            caller = f"{Path(mine[-1].filename).name}:{mine[-1].name}" if mine else "elsewhere"
            self.by_caller[caller] += 1
        return func(*args, **(kwargs or {}))


def _run(epochs: int = 2, check_every: int = 8, **options: Any) -> tuple[HostTransfers, list[int]]:
    task = load_task("digits", seed=0, device="cpu", model="cnn", batch_size=64)  # 23 batches
    assert len(task.train_loader) == 23
    checked: list[int] = []
    counter = HostTransfers()
    with counter:
        result = train(
            task,
            epochs=epochs,
            scheduler_params={"lr_min": 0.05, "lr_max": 0.1},
            device="cpu",
            check_every=check_every,
            on_check=lambda step, _loss: checked.append(step),
            **options,
        )
    assert result.status == "completed"
    return counter, checked


@pytest.mark.parametrize(
    "options", [{}, {"precision": "bf16", "channels_last": True}], ids=["fp32", "bf16-cl"]
)
def test_losses_reach_the_host_once_per_check_and_once_per_evaluation(options) -> None:
    counter, checked = _run(**options)
    # The documented schedule: after steps 1, 2, 4, 8, then every 8 steps, and at each
    # epoch's end (23 and 46).
    assert checked == [1, 2, 4, 8, 16, 23, 31, 39, 46]
    # Nothing else in the loop or the task touches the host; PLRS draws its LRs in blocks from
    # a CPU generator (never a device tensor), one block per 1,024 steps.
    assert counter.by_caller == {
        "_loop.py:_check": len(checked),
        "_loop.py:_evaluate": 2,  # one per epoch's validation
        "_plrs.py:_draw_block": 1,
    }


def test_the_number_of_transfers_follows_check_every() -> None:
    counter, checked = _run(epochs=1, check_every=2)
    assert checked == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 23]
    assert counter.by_caller["_loop.py:_check"] == 13
