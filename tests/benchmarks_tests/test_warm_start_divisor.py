"""``benchmarks/warm_start_divisor.py``: the table on hand-made scores, one tiny real ladder."""

from __future__ import annotations

import pytest
from warm_start_divisor import DIVISORS, run_ladder, table

from prl_tune.training import OptimizerConfig


def test_a_divisor_is_scored_by_the_better_of_its_pair_against_the_ladders_best() -> None:
    # One case: the best divisor is 8 (0.98); the pair (4, 8) gets it, (8, 16) too.
    accuracy = {1: 0.0, 2: 0.5, 4: 0.9, 8: 0.98, 16: 0.95, 32: 0.9, 64: 0.8}
    scores = {("f", 0, d): a for d, a in accuracy.items()}
    rows = table(scores, "X")
    by_divisor = {int(row.split(" | ")[1]): row for row in rows[2:]}
    assert set(by_divisor) == {d for d in DIVISORS if 2 * d in DIVISORS}
    assert by_divisor[4] == "| X | 4 | 0.9800 | 0.9800 | 0.00 | 0.0 |"
    assert by_divisor[1] == "| X | 1 | 0.5000 | 0.5000 | 48.00 | 48.0 |"
    assert by_divisor[16] == "| X | 16 | 0.9500 | 0.9500 | 3.00 | 3.0 |"


def test_the_worst_and_the_largest_gap_are_over_cases() -> None:
    scores = {("f", s, d): 0.9 for s in (0, 1) for d in DIVISORS}
    scores["f", 1, 2] = scores["f", 1, 4] = 0.5  # seed 1 loses 40 points with the pair (2, 4)
    row = next(r for r in table(scores, "X") if r.startswith("| X | 2 |"))
    assert row == "| X | 2 | 0.7000 | 0.5000 | 20.00 | 40.0 |"


@pytest.mark.slow
def test_a_tiny_real_ladder_scores_every_divisor() -> None:
    scores = run_ladder(OptimizerConfig("adamw"), ["digits_cnn"], seeds=1, epochs=1)
    assert set(scores) == {("digits_cnn", 0, d) for d in DIVISORS}
    assert all(0.0 <= a <= 1.0 for a in scores.values())
    assert max(scores.values()) > 0.5  # some divisor learns in one epoch
