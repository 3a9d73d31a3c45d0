from __future__ import annotations

from typing import Any

import pytest
import torch

from prl_tune.training import OPTIMIZER_NAMES, build_optimizer


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(3, 2).parameters())


def test_names() -> None:
    assert OPTIMIZER_NAMES == ("sgd", "adamw")


def test_sgd_defaults_and_options() -> None:
    plain = build_optimizer(_params())
    assert isinstance(plain, torch.optim.SGD)
    assert plain.defaults["lr"] == 0.1
    assert plain.defaults["momentum"] == 0.0
    nesterov = build_optimizer(_params(), "sgd", momentum=0.9, nesterov=True, weight_decay=5e-4)
    assert nesterov.defaults["momentum"] == 0.9
    assert nesterov.defaults["nesterov"] is True
    assert nesterov.defaults["weight_decay"] == 5e-4


def test_adamw_defaults_and_options() -> None:
    default = build_optimizer(_params(), "adamw", lr=1e-3)
    assert isinstance(default, torch.optim.AdamW)
    assert default.defaults["betas"] == (0.9, 0.999)
    assert default.defaults["eps"] == 1e-8
    custom = build_optimizer(_params(), "adamw", betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)
    assert custom.defaults["betas"] == (0.8, 0.99)
    assert custom.defaults["eps"] == 1e-6
    assert custom.defaults["weight_decay"] == 0.01


def test_parameter_groups_are_accepted() -> None:
    model = torch.nn.Linear(3, 2)
    groups: list[dict[str, Any]] = [
        {"params": [model.weight]},
        {"params": [model.bias], "weight_decay": 0.0},
    ]
    assert len(build_optimizer(groups, "sgd").param_groups) == 2


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("adam", {}, r"name must be one of \['sgd', 'adamw'\] but got 'adam'"),
        ("sgd", {"lr": -0.1}, "lr must be"),
        ("sgd", {"lr": float("nan")}, "lr must be"),
        ("sgd", {"weight_decay": -1e-4}, "weight_decay must be"),
        ("sgd", {"momentum": 1.0}, r"momentum must be a finite number in \[0, 1\)"),
        ("sgd", {"momentum": -0.1}, r"momentum must be a finite number in \[0, 1\)"),
        ("sgd", {"nesterov": True}, "nesterov needs momentum > 0"),
        ("sgd", {"betas": (0.9, 0.99)}, "betas applies to 'adamw' only"),
        ("sgd", {"eps": 1e-6}, "eps applies to 'adamw' only"),
        ("adamw", {"momentum": 0.9}, "applies to 'sgd' only"),
        ("adamw", {"nesterov": True}, "applies to 'sgd' only"),
        ("adamw", {"betas": (0.9, 1.0)}, "betas must be"),
        ("adamw", {"betas": (0.9,)}, "betas must be"),
        ("adamw", {"eps": 0.0}, "eps must be"),
    ],
)
def test_invalid_options_are_rejected(name: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_optimizer(_params(), name, **options)
