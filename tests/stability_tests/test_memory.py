from __future__ import annotations

import pytest

from prl_tune.stability import RangeRecord, UnstableRangeMemory


def _memory(mode: str = "dominance") -> UnstableRangeMemory:
    return UnstableRangeMemory(
        mode,
        [
            RangeRecord(0.07, 0.1, unstable=False, trial=0),
            RangeRecord(1.4, 2.0, unstable=True, trial=1),
            RangeRecord(0.7, 1.0, unstable=False, trial=2),
        ],
    )


def test_dominated_range_is_blocked_by_the_unstable_record() -> None:
    blocker = _memory().blocker(1.5, 2.5)
    assert blocker is not None and blocker.trial == 1
    assert _memory().blocker(1.4, 2.0).trial == 1  # equal counts as "at least as aggressive"


def test_lower_or_wider_ranges_are_not_blocked_in_dominance_mode() -> None:
    memory = _memory()
    assert memory.blocker(0.1, 2.5) is None  # lower lr_min: not dominated
    assert memory.blocker(1.5, 1.9) is None  # lower lr_max
    assert memory.blocker(0.05, 0.08) is None


def test_lr_max_mode_blocks_on_lr_max_alone() -> None:
    assert _memory("lr_max").blocker(0.1, 2.5).trial == 1
    assert _memory("lr_max").blocker(0.1, 1.9) is None


def test_off_blocks_nothing() -> None:
    assert _memory("off").blocker(10.0, 20.0) is None


def test_a_stable_observation_above_overrides_the_memory() -> None:
    memory = _memory("lr_max")
    memory.add(RangeRecord(1.0, 3.0, unstable=False, trial=5))  # noisy boundary
    assert memory.blocker(0.9, 2.5) is None
    assert memory.blocker(1.0, 3.5).trial == 1


def test_other_contexts_are_not_compared() -> None:
    memory = _memory()
    assert memory.blocker(1.5, 2.5, context=(("momentum", 0.9),)) is None


def test_boundary() -> None:
    assert _memory().boundary() == (1.0, 2.0)
    assert UnstableRangeMemory().boundary() == (None, None)


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        UnstableRangeMemory("sometimes")


def test_the_evidence_key_a_host_adds_to_a_config_is_no_part_of_the_context() -> None:
    from prl_tune.stability import EVIDENCE_KEY, range_context

    plain = range_context("plrs", {"lr_max": 1.0, "momentum": 0.9})
    assert range_context("plrs", {"lr_max": 1.0, "momentum": 0.9, EVIDENCE_KEY: True}) == plain
    assert plain == (("scheduler", "plrs"), ("momentum", 0.9))
