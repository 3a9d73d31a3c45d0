"""``PendingRangeTest``: a space whose lr_max range comes later, checked for everything else now."""

from __future__ import annotations

import pytest

from prl_tune.space import PendingRangeTest, SchedulerSpace


def test_everything_but_lr_max_is_checked_at_once() -> None:
    with pytest.raises(ValueError, match="range_test_span must be a finite number >= 1"):
        PendingRangeTest(span=0.5)
    with pytest.raises(ValueError, match="schedulers each must be one of"):
        PendingRangeTest(schedulers=["plrs", "sgdr"])
    with pytest.raises(ValueError, match="lr_min_ratio must be <= 1"):
        PendingRangeTest(lr_min_ratio=[0.0, 2.0])
    with pytest.raises(ValueError, match="lr_min and lr_min_ratio are alternatives"):
        PendingRangeTest(lr_min_ratio=[0.1, 0.5], lr_min=[0.01, 0.1])


def test_resolve_builds_the_concrete_space() -> None:
    pending = PendingRangeTest(span=4.0, schedulers=["plrs", "cosine"], lr_min_ratio=0.5)
    space = pending.resolve((0.05, 0.2))
    assert isinstance(space, SchedulerSpace)
    assert space.schedulers == ("plrs", "cosine")
    assert space.plrs.lr_max == (0.05, 0.2)
    assert space.plrs.lr_min_ratio == (0.5, 0.5)
    assert space.plrs.param_names == ("plrs_lr_max", "plrs_lr_min_ratio")


def test_resolve_checks_lr_max_against_an_lr_min_range() -> None:
    pending = PendingRangeTest(lr_min=[5.0, 10.0])
    with pytest.raises(ValueError, match="lr_max must not reach below lr_min") as info:
        pending.resolve((0.1, 0.3))
    assert info.value.argument == "lr_max"  # type: ignore[attr-defined]
