"""Record per-step training-loss traces of the digits task under PLRS, for the stability rules.

Run ``python benchmarks/record_loss_traces.py [--out PATH]`` (about two minutes on two CPU
cores). Every run trains the ``digits`` CNN or MLP with plain SGD under PLRS (``lr_min =
ratio x lr_max``) through :func:`prl_tune.training.train`, with only the non-finite rule on (so
spikes and collapses are recorded, not stopped), and records the loss of every optimizer step
(rounded to 4 decimals; a non-finite value as the string ``"nan"`` or ``"inf"``) and the final
validation accuracy. A run whose loss became non-finite stops at the next check; its trace
ends there and its accuracy is ``null``. Batch 64 runs last 8 epochs (184 steps), batch 16
runs 4 epochs (360 steps) to keep the file small.

The JSON is the fixture of ``tests/stability_tests/test_real_traces.py``. After writing it the
script prints one line per run: the first spike of the running loss (step and peak, as the
default :class:`~prl_tune.stability.StabilityRules` define it), the verdict of the default
rules and the final accuracy. ``--summary`` prints that table for an existing file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from prl_tune.stability import StabilityMonitor, StabilityRules
from prl_tune.training import TaskData, load_task, train

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "stability_tests" / "traces.json"
LR_MAX = (0.001, 0.003, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0)
EPOCHS = {64: 8, 16: 4}
CHANCE_LOSS = math.log(10)  # 10 balanced classes
_RECORDING_RULES = StabilityRules(
    explode_factor=None, sustain_factor=None, collapse_window=None, dead_window=None
)


def _encode(value: float) -> float | str:
    return round(value, 4) if math.isfinite(value) else str(value)


def decode(losses: Sequence[float | str]) -> list[float]:
    """The trace's losses as floats (``"nan"``/``"inf"`` strings back to non-finite floats)."""
    return [float(v) for v in losses]


def record_step_losses(task: TaskData) -> list[torch.Tensor]:
    """Make ``task`` keep the loss of every training step; the list it appends them to (still
    on the device; evaluation runs under ``no_grad`` and is not kept)."""
    loss_fn = task.loss_fn
    steps: list[torch.Tensor] = []

    def recording_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(outputs, targets)
        if torch.is_grad_enabled():
            steps.append(loss.detach())
        return loss

    task.loss_fn = recording_loss
    return steps


def record_run(
    model: str, batch_size: int, lr_max: float, ratio: float, seed: int, epochs: int
) -> dict[str, Any]:
    """Train one run; its per-step losses, status and final validation accuracy."""
    task = load_task("digits", seed=seed, model=model, batch_size=batch_size)
    steps_per_epoch = len(task.train_loader)  # type: ignore[arg-type]
    steps = record_step_losses(task)
    result = train(
        task,
        epochs=epochs,
        scheduler_params={"lr_min": ratio * lr_max, "lr_max": lr_max},
        device="cpu",
        seed=seed,
        stability=_RECORDING_RULES,
    )
    final = result.final
    completed = result.status == "completed" and final is not None
    return {
        "model": model,
        "batch_size": batch_size,
        "lr_max": lr_max,
        "lr_min": round(ratio * lr_max, 10),
        "seed": seed,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "status": result.status,
        "val_accuracy": round(final.val_accuracy, 4) if completed and final else None,
        "losses": [_encode(v) for v in torch.stack(steps).tolist()],
    }


def first_spike(losses: Sequence[float], rules: StabilityRules) -> tuple[int, float] | None:
    """``(step, running loss)`` where the running loss first exceeds ``spike_factor`` x the
    reference (chance level or first loss, the larger), or ``None``."""
    running: float | None = None
    reference = 0.0
    for step, loss in enumerate(losses, start=1):
        if not math.isfinite(loss):
            return None
        if running is None:
            running, reference = loss, max(CHANCE_LOSS, loss)
        else:
            running += rules.smoothing * (loss - running)
        if running > rules.spike_factor * reference:
            return step, running
    return None


def summary(runs: Sequence[dict[str, Any]], rules: StabilityRules) -> list[str]:
    """One line per run: configuration, first spike, verdict of ``rules``, final accuracy."""
    lines = [
        f"{'model':5} {'batch':>5} {'lr_max':>6} {'seed':>4} {'steps':>5} {'spike@':>7} "
        f"{'verdict':>10} {'at':>4} {'val_acc':>7}"
    ]
    for run in runs:
        losses = decode(run["losses"])
        spike = first_spike(losses, rules)
        monitor = StabilityMonitor(rules, chance_loss=CHANCE_LOSS)
        verdict = None
        for start in range(0, len(losses), rules.check_every):
            verdict = monitor.observe(losses[start : start + rules.check_every], start + 1)
            if verdict is not None:
                break
        accuracy = run["val_accuracy"]
        lines.append(
            f"{run['model']:5} {run['batch_size']:5d} {run['lr_max']:6g} {run['seed']:4d} "
            f"{len(losses):5d} {spike[0] if spike else '-':>7} "
            f"{verdict.kind if verdict else '-':>10} {verdict.step if verdict else '-':>4} "
            f"{'-' if accuracy is None else f'{accuracy:.3f}':>7}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=sorted(EPOCHS, reverse=True))
    parser.add_argument("--lr-max", nargs="+", type=float, default=list(LR_MAX))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ratio", type=float, default=0.7, help="lr_min / lr_max")
    parser.add_argument("--summary", action="store_true", help="only print the table of --out")
    args = parser.parse_args(argv)
    if args.summary:
        data = json.loads(args.out.read_text(encoding="utf-8"))
        print("\n".join(summary(data["runs"], StabilityRules())))
        return 0
    started = time.perf_counter()
    runs = []
    for model in args.models:
        for batch_size in args.batch_sizes:
            epochs = EPOCHS.get(batch_size, 8)
            for lr_max in args.lr_max:
                for seed in args.seeds:
                    runs.append(record_run(model, batch_size, lr_max, args.ratio, seed, epochs))
                    print(
                        f"\r{len(runs)} runs, {time.perf_counter() - started:.0f} s",
                        end="",
                        file=sys.stderr,
                    )
    print(file=sys.stderr)
    data = {
        "description": (
            "Per-step training losses of the digits task, SGD, PLRS with lr_min = ratio x "
            "lr_max; written by benchmarks/record_loss_traces.py."
        ),
        "task": "digits",
        "optimizer": "sgd",
        "ratio": args.ratio,
        "chance_loss": CHANCE_LOSS,
        "torch": torch.__version__,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(runs)} runs, {len(text) / 1024:.0f} KiB, to {args.out}", file=sys.stderr)
    print("\n".join(summary(runs, StabilityRules())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
