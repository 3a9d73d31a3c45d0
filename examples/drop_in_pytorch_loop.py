"""PLRS as a one-line drop-in for an existing plain PyTorch training loop.

The loop below is ordinary PyTorch (scikit-learn's bundled digits, a small MLP, SGD). The only
prl_tune line is the scheduler: ``PLRS(optimizer, lr_min=..., lr_max=..., seed=...)``, stepped
after every ``optimizer.step()`` like any torch LR scheduler.

    python examples/drop_in_pytorch_loop.py [--epochs 10]
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

from prl_tune import PLRS


def main(epochs: int = 10) -> float:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = PLRS(optimizer, lr_min=0.07, lr_max=0.1, seed=0)  # <- the one line

    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_train)).split(32):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()  # a fresh draw lr ~ U[0.07, 0.1] for the next step
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        print(f"epoch {epoch + 1}: val accuracy {accuracy:.3f}, last lr {scheduler.get_last_lr()}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    main(parser.parse_args().epochs)
