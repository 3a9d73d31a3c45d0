"""Your own Optuna objective, with PLRSSpace for the bounds and PLRS in your loop.

``PLRSSpace.suggest(trial)`` samples ``lr_max`` (log-uniform) and ``lr_min = ratio * lr_max``, so
``lr_min <= lr_max`` without rejected samples, and stores ``lr_min``/``lr_max``/``lr_center`` on
the trial. Everything else is a plain Optuna study on a SQLite file.

    python examples/optuna_objective.py [--n-trials 12] [--epochs 6] [--storage sqlite:///x.db]
"""

from __future__ import annotations

import argparse

import optuna
import torch
from sklearn.datasets import load_digits
from torch import nn

from prl_tune import PLRS, PLRSSpace

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
Y = torch.tensor(digits.target)
SPACE = PLRSSpace(lr_max=(1e-3, 1.0), lr_min_ratio=(0.0, 1.0))


def objective(trial: optuna.Trial, epochs: int) -> float:
    bounds = SPACE.suggest(trial)  # {"lr_min": ..., "lr_max": ...}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=bounds["lr_max"])
    scheduler = PLRS(optimizer, **bounds, seed=trial.number)
    generator = torch.Generator().manual_seed(0)
    accuracy = 0.0
    for epoch in range(epochs):
        for idx in torch.randperm(1400, generator=generator).split(32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            optimizer.step()
            scheduler.step()
        with torch.no_grad():
            accuracy = (model(X[1400:]).argmax(1) == Y[1400:]).float().mean().item()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def main(n_trials: int = 12, epochs: int = 6, storage: str = "sqlite:///example.db") -> None:
    study = optuna.create_study(
        study_name="example-objective",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4),
        load_if_exists=True,
    )
    study.optimize(lambda trial: objective(trial, epochs), n_trials=n_trials)
    best = study.best_trial
    print(
        f"best accuracy {best.value:.3f} with lr_min={best.user_attrs['lr_min']:.4g}, "
        f"lr_max={best.user_attrs['lr_max']:.4g}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--storage", default="sqlite:///example.db")
    args = parser.parse_args()
    main(args.n_trials, args.epochs, args.storage)
