"""Record the stability corpus: per-step training losses over task families, optimizers and LRs.

    python benchmarks/record_corpus.py [--jobs 2] [--out PATH]

About 15 minutes on two CPU cores. Every run trains one of the families of
``benchmarks/task_families.py`` (digits CNN and MLP, a BatchNorm ResNet, a 1-D convolutional
sequence model, a small transformer, an MSE regression MLP) through
:func:`prl_tune.training.train` with only the non-finite rule on, so spikes, collapses and
dead runs are recorded, not stopped. The grid:

- optimizers: plain SGD, SGD with momentum 0.9, SGD with Nesterov momentum 0.9, AdamW;
- batch 64 (8 epochs) and batch 16 (2 epochs): 192 steps either way;
- ``lr_max`` on a half-decade grid, 1e-3 to 100 for plain SGD and 1e-4 to 10 for the others,
  up to where every run fails;
- PLRS (``lr_min`` = 0.3 x ``lr_max`` for seed 0 and 0.7 x for seed 1) at both batch sizes and
  seeds 0 and 1; cosine with warm restarts and one-cycle (peak LR = ``lr_max``) at batch 64,
  seed 0.

Each run keeps the loss of every optimizer step (4 significant digits; ``"nan"``/``"inf"`` for
a non-finite one, after which the run stops at the next check), and per epoch the mean
training loss, the validation loss and the validation accuracy (``null`` for regression). The
file is gzip-compressed JSON; ``tests/stability_tests`` and ``benchmarks/stability_holdout.py``
read it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from record_loss_traces import record_step_losses
from task_families import CHANCE, FAMILIES

from prl_tune.stability import StabilityRules
from prl_tune.training import train

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "stability_tests" / "corpus.json.gz"
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "adamw": ("adamw", {}),
}
EPOCHS = {64: 8, 16: 2}
RATIOS = {0: 0.3, 1: 0.7}  # lr_min / lr_max by seed
BASELINES = ("cosine", "onecycle")


def lr_grid(optimizer: str) -> list[float]:
    """Half-decade steps: 1e-3..100 for plain SGD, 1e-4..10 for the others."""
    low = -3 if optimizer == "sgd" else -4
    return [float(f"{10 ** (low + k / 2):.3g}") for k in range(11)]


def _encode(value: float) -> float | str:
    return float(f"{value:.4g}") if math.isfinite(value) else str(value)


def _metric(value: float) -> float | None:
    return float(f"{value:.4g}") if math.isfinite(value) else None


def record_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run of the grid; its per-step losses and per-epoch metrics."""
    torch.set_num_threads(1)
    task = FAMILIES[job["family"]](
        seed=job["seed"], device=torch.device("cpu"), batch_size=job["batch_size"]
    )
    steps = record_step_losses(task)
    name, options = OPTIMIZERS[job["optimizer"]]
    lr_max = job["lr_max"]
    if job["scheduler"] == "plrs":
        params = {"lr_min": job["lr_min"], "lr_max": lr_max}
    else:
        params = {"lr": lr_max}
    result = train(
        task,
        epochs=job["epochs"],
        scheduler=job["scheduler"],
        scheduler_params=params,
        optimizer=name,
        optimizer_params=options,
        device="cpu",
        seed=job["seed"],
        stability=StabilityRules(
            explode_factor=None, sustain_factor=None, collapse_window=None, dead_window=None
        ),
    )
    return {
        **job,
        "steps_per_epoch": len(task.train_loader),  # type: ignore[arg-type]
        "status": result.status,
        "train_loss": [_metric(m.train_loss) for m in result.history],
        "val_loss": [_metric(m.val_loss) for m in result.history],
        "val_accuracy": [_metric(m.val_accuracy) for m in result.history],
        "losses": [_encode(v) for v in torch.stack(steps).tolist()] if steps else [],
    }


def jobs(families: Sequence[str]) -> list[dict[str, Any]]:
    """Every run of the grid, in a fixed order."""
    grid = []
    for family in families:
        for optimizer in OPTIMIZERS:
            for lr_max in lr_grid(optimizer):
                for scheduler in ("plrs", *BASELINES):
                    for batch_size in EPOCHS if scheduler == "plrs" else (64,):
                        for seed in RATIOS if scheduler == "plrs" else (0,):
                            ratio = RATIOS[seed]
                            grid.append(
                                {
                                    "family": family,
                                    "optimizer": optimizer,
                                    "scheduler": scheduler,
                                    "batch_size": batch_size,
                                    "epochs": EPOCHS[batch_size],
                                    "lr_max": lr_max,
                                    "lr_min": float(f"{ratio * lr_max:.4g}")
                                    if scheduler == "plrs"
                                    else None,
                                    "seed": seed,
                                }
                            )
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args(argv)
    grid = jobs(args.families)
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for run in pool.imap(record_run, grid, chunksize=4):
            runs.append(run)
            elapsed = time.perf_counter() - started
            print(f"\r{len(runs)}/{len(grid)} runs, {elapsed:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    data = {
        "description": "Per-step training losses; written by benchmarks/record_corpus.py.",
        "chance_loss": {family: CHANCE[family] for family in args.families},
        "torch": torch.__version__,
        "runs": runs,
    }
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(text.encode("utf-8"))  # mtime 0: the same runs give the same bytes
    size = args.out.stat().st_size / 1024
    print(f"wrote {len(runs)} runs ({size:.0f} KiB) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
