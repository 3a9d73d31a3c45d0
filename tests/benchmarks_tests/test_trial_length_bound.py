"""``benchmarks/trial_length_bound.py``: the oracle and the early-stop rules on hand-made curves."""

from __future__ import annotations

from trial_length_bound import Curve, early_stop_table, first_epoch_at, oracle_table, stop_epoch


def test_the_first_epoch_at_the_target_counts_from_one_and_only_up_to_the_last() -> None:
    accuracy = (0.5, 0.9, 0.95, 0.97)
    assert first_epoch_at(accuracy, 0.95, 4) == 3
    assert first_epoch_at(accuracy, 0.9, 4) == 2  # equal to the target reaches it
    assert first_epoch_at(accuracy, 0.97, 3) is None
    assert first_epoch_at(accuracy, 0.99, 4) is None


def test_an_early_stop_ends_after_patience_epochs_without_a_new_best() -> None:
    assert stop_epoch((0.5, 0.6, 0.6, 0.55, 0.7), patience=2) == 4  # a tie is no new best
    assert stop_epoch((0.5, 0.6, 0.6, 0.55, 0.7), patience=3) == 5  # never stopped: all epochs
    assert stop_epoch((0.5, 0.6, 0.7, 0.8), patience=2) == 4


def test_the_oracle_takes_the_fewest_steps_over_configurations_per_seed() -> None:
    curves = [
        Curve(0, 0.01, 0.0, (0.90, 0.96, 0.97, 0.97), steps_per_epoch=100),
        Curve(0, 0.1, 0.7, (0.96, 0.95, 0.97, 0.98), steps_per_epoch=100),
        Curve(0, 0.05, 0.7, (0.90, 0.96, 0.97, 0.98), steps_per_epoch=100, setup=80),  # warm
        Curve(1, 0.01, 0.0, (0.90, 0.92, 0.93, 0.96), steps_per_epoch=100),
        Curve(1, 0.05, 0.7, (0.90, 0.92, 0.93, 0.94), steps_per_epoch=100, setup=80),  # warm
        Curve(2, 0.01, 0.0, (0.90, 0.92, 0.93, 0.94), steps_per_epoch=100),
        Curve(2, 0.05, 0.7, (0.90, 0.92, 0.93, 0.94), steps_per_epoch=100, setup=80),  # warm
    ]
    lines = oracle_table(curves, target=0.96, max_steps=200)
    # The warm start's trial is not in the grid's oracle, and its steps count the range test.
    assert lines[2] == "| 0 | 100 | 0.1 | 0.7 | 1 | 0.9600 | yes | 280 |"
    assert lines[3] == "| 1 | 400 | 0.01 | 0 | 4 | 0.9600 | no | not reached |"
    assert lines[4] == "| 2 | not reached | | | | | no | not reached |"
    assert lines[-1] == (
        "\noracle median 400 steps over the grid, never for the warm start's first trials"
    )


def test_a_stopped_run_valued_at_its_best_epoch_can_reach_what_its_last_epoch_does_not() -> None:
    curves = [
        Curve(0, 0.01, 0.0, (0.97, 0.95, 0.94, 0.99), steps_per_epoch=100),
        Curve(0, 0.01, 0.7, (0.97, 0.95, 0.94, 0.99), steps_per_epoch=100, setup=1),  # warm
    ]
    rows = early_stop_table(curves, target=0.96, max_steps=300)
    # stopped after epoch 3: last 0.94, best 0.97; the warm run needs the test's step more
    assert rows[2].endswith("| 0/1 / 1/1 | 0/1 / 0/1 |")


def test_the_early_stop_table_counts_what_a_stopped_trial_would_be_worth() -> None:
    curves = [
        Curve(0, 0.01, 0.0, (0.90, 0.96, 0.95, 0.94, 0.99), steps_per_epoch=100),
        Curve(1, 0.01, 0.0, (0.97, 0.96, 0.96, 0.96, 0.96), steps_per_epoch=100),
        Curve(1, 0.01, 0.7, (0.97, 0.96, 0.96, 0.96, 0.96), steps_per_epoch=90, setup=20),
    ]
    rows = early_stop_table(curves, target=0.96, max_steps=300)
    # patience 2: seed 0 stops after epoch 4 (0.94 instead of 0.99, best 0.96 instead of 0.99),
    # seed 1 after epoch 3 (nothing lost) at 300 steps with 0.96: the target, in time; the
    # warm trial of seed 1 too (20 + 3 x 90 steps). Warm runs are not in the loss columns.
    assert rows[2] == "| no new best for 2 epochs | 3.50 | +2.50 | +1.50 | 1/2 / 1/2 | 1/2 / 1/2 |"
    # patience 3: seed 0 sees its new best at epoch 5, seed 1 stops after epoch 4: too late.
    assert rows[3] == "| no new best for 3 epochs | 4.50 | +0.00 | +0.00 | 0/2 / 0/2 | 0/2 / 0/2 |"
