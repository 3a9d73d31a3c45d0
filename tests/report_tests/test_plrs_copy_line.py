"""The report's copy line builds the trial's scheduler, PLRS's choices and variants included."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from prl_tune.report._model import TrialView
from prl_tune.schedulers import PLRS, build_scheduler


def _view(scheduler: str, attrs: dict[str, Any]) -> TrialView:
    return TrialView(0, "complete", 0.9, scheduler, 0.01, 0.1, None, attrs, {})


@pytest.mark.parametrize(
    ("scheduler", "attrs", "line", "choices"),
    [
        ("plrs", {}, "PLRS(optimizer, lr_min=0.01, lr_max=0.1)", (1, "uniform")),
        (
            "plrs",
            {"draw_every": 8, "distribution": "beta", "beta_shape": 3.0},
            "PLRS(optimizer, lr_min=0.01, lr_max=0.1, draw_every=8, distribution='beta', "
            "beta_shape=3.0)",
            (8, "beta"),
        ),
        (
            "plrs",
            {"draw_every": "step", "distribution": "log-uniform"},
            "PLRS(optimizer, lr_min=0.01, lr_max=0.1, distribution='log-uniform')",
            (1, "log-uniform"),
        ),
        (
            "plrs",
            {"draw_every": "epoch"},
            "build_scheduler(\"plrs\", optimizer, lr_min=0.01, lr_max=0.1, draw_every='epoch', "
            "epochs=8, steps_per_epoch=len(train_loader))",
            (5, "uniform"),
        ),
        (
            "plrs-beta",
            {},
            'build_scheduler("plrs-beta", optimizer, lr_min=0.01, lr_max=0.1, epochs=8, '
            "steps_per_epoch=len(train_loader))",
            (1, "beta"),
        ),
    ],
)
def test_the_copy_line_builds_the_trials_plrs(
    scheduler: str, attrs: dict[str, Any], line: str, choices: tuple[int, str]
) -> None:
    text = _view(scheduler, attrs).copy_line(8)
    assert text == line
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    built = eval(  # the line runs as printed
        text,
        {"PLRS": PLRS, "build_scheduler": build_scheduler},
        {"optimizer": optimizer, "train_loader": range(5)},
    )
    assert (built.draw_every, built.distribution) == choices
