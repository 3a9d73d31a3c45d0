"""Your own Ray Tune trainable, with ASHA wrapped by prl_tune's InstabilityScheduler.

The trainable is a plain torch loop with PLRS; every 8 steps it reports the step losses since
the last report as ``loss``. The scheduler stops a trial whose loss explodes or collapses to
chance level at the report that shows it, never starts a trial whose LR range is at least as
aggressive as one that already proved unstable, and otherwise lets ASHA decide.

    python examples/ray_tune_asha.py [--samples 12] [--epochs 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile

import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator
from sklearn.datasets import load_digits
from torch import nn

from prl_tune import PLRS, InstabilityScheduler, PLRSSpace

SPACE = PLRSSpace(lr_max=(1e-3, 10.0), lr_min_ratio=(0.0, 1.0))  # wide: some ranges blow up


def trainable(config: dict[str, float]) -> None:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    bounds = SPACE.decode(config)  # {"lr_min": ..., "lr_max": ...}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=bounds["lr_max"])
    scheduler = PLRS(optimizer, **bounds, seed=0)
    generator = torch.Generator().manual_seed(0)
    losses: list[float] = []
    accuracy = 0.0
    for epoch in range(1, int(config["epochs"]) + 1):
        for idx in torch.randperm(1400, generator=generator).split(32):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            diverged = not math.isfinite(losses[-1])
            if len(losses) == 8 or diverged:
                tune.report({"loss": losses, "epoch": epoch - 1, "val_accuracy": accuracy})
                losses = []
            if diverged:  # nothing left to learn; the scheduler has stopped it anyway
                return
        with torch.no_grad():
            accuracy = (model(x[1400:]).argmax(1) == y[1400:]).float().mean().item()
        tune.report({"loss": losses, "epoch": epoch, "val_accuracy": accuracy})
        losses = []


def main(samples: int = 12, epochs: int = 4, seed: int = 0) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    scheduler = InstabilityScheduler(
        ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=1),
        space=SPACE,
        chance_loss=math.log(10),
    )
    with tempfile.TemporaryDirectory() as folder:
        tuner = tune.Tuner(
            trainable,
            param_space={**SPACE.ray_param_space(), "epochs": epochs},
            tune_config=tune.TuneConfig(
                search_alg=BasicVariantGenerator(random_state=seed),
                scheduler=scheduler,
                metric="val_accuracy",
                mode="max",
                num_samples=samples,
            ),
            run_config=tune.RunConfig(storage_path=folder, verbose=0),
        )
        grid = tuner.fit()
        best = grid.get_best_result()
    ray.shutdown()
    bounds = SPACE.decode(best.config)
    print(
        f"best accuracy {best.metrics['val_accuracy']:.3f} with lr_min={bounds['lr_min']:.4g}, "
        f"lr_max={bounds['lr_max']:.4g}"
    )
    kinds = [stop.kind or stop.pruned_by for stop in scheduler.stopped.values()]
    for kind in sorted(set(kinds)):
        print(f"stopped as unstable ({kind}): {kinds.count(kind)} of {samples} trials")
    for stable, unstable in scheduler.boundary().values():
        print(
            f"stability boundary: stable up to lr_max {_number(stable)}, unstable from lr_max "
            f"{_number(unstable)}"
        )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.samples, args.epochs, args.seed)
