"""The rules on the stability corpus: six task families, four optimizers, data held out.

``benchmarks/record_corpus.py`` recorded the corpus (``corpus.json.gz``); ``benchmarks/corpus.py``
labels each run by how it ended (good, recovered, slow, poor, failed, non-finite) and replays it
as the training loop feeds the rules, with the evidence a study would have (``known_to_learn``).
The held-out tests choose thresholds without one family, as ``benchmarks/stability_holdout.py``
does, and judge them on that family. Tolerances are stated at each assertion with the measured
figure.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import corpus
import stability_holdout

from prl_tune.stability import VERDICT_KINDS, StabilityRules

FAMILIES = ("digits_cnn", "digits_mlp", "regression", "resnet", "sequence", "transformer")
KEPT = ("good", "recovered", "slow")
# Measured with the shipped defaults: every family has at least 89 % of its failed and
# non-finite runs caught (regression: 84 of 94).
MIN_CAUGHT = 0.85


def _runs() -> list[dict[str, Any]]:
    return list(corpus.load()["runs"])


@functools.cache
def _shipped() -> list[tuple[Any, Any]]:
    """The shipped defaults' verdict on every run (computed once)."""
    return corpus.verdicts(_runs(), StabilityRules())


def _family(name: str) -> tuple[list[dict[str, Any]], list[tuple[Any, Any]]]:
    pairs = [(r, x) for r, x in zip(_runs(), _shipped(), strict=True) if r["family"] == name]
    return [r for r, _ in pairs], [x for _, x in pairs]


def _caught(summary: dict[str, Any]) -> float:
    counts, stopped = summary["counts"], summary["stopped"]
    failed = counts["failed"] + counts["non-finite"]
    return (stopped["failed"] + stopped["non-finite"]) / failed


def test_the_corpus_covers_what_users_run() -> None:
    assert corpus.CORPUS.stat().st_size < 1_000_000
    runs = _runs()
    assert {r["family"] for r in runs} == set(FAMILIES)
    assert {r["optimizer"] for r in runs} == {"sgd", "momentum", "nesterov", "adamw"}
    assert {r["batch_size"] for r in runs} == {16, 64}
    assert {r["scheduler"] for r in runs} == {"plrs", "cosine", "onecycle"}
    assert [r for r in runs if r["chance"] is None]  # regression: no chance level
    for optimizer in ("sgd", "momentum", "nesterov", "adamw"):
        lrs = [r["lr_max"] for r in runs if r["optimizer"] == optimizer]
        assert math.log10(max(lrs) / min(lrs)) >= 4
    for family in FAMILIES:
        labels = {r["label"] for r in runs if r["family"] == family}
        assert {"good", "slow", "failed"} <= labels, family
        # Up to where every run fails: the largest lr_max of each optimizer fails.
        for optimizer in ("sgd", "adamw"):
            top = max(r["lr_max"] for r in runs if r["optimizer"] == optimizer)
            ends = [
                r["label"]
                for r in runs
                if (r["family"], r["optimizer"], r["lr_max"]) == (family, optimizer, top)
            ]
            assert set(ends) <= {"failed", "non-finite", "poor"}, (family, optimizer, ends)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_shipped_rules_keep_every_good_recovered_and_slow_run(family: str) -> None:
    runs, results = _family(family)
    for run, (verdict, _) in zip(runs, results, strict=True):
        if run["label"] in KEPT:
            assert verdict is None, (run["label"], run["optimizer"], run["lr_max"], verdict)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_shipped_rules_catch_the_failed_runs_of_every_family(family: str) -> None:
    runs, results = _family(family)
    assert _caught(corpus.summarize(runs, results)) >= MIN_CAUGHT


def test_non_finite_runs_are_stopped_by_their_first_non_finite_step() -> None:
    for run, (verdict, _) in zip(_runs(), _shipped(), strict=True):
        if run["label"] != "non-finite":
            continue
        assert verdict is not None
        bad = next((k for k, v in enumerate(run["losses"], 1) if not math.isfinite(v)), None)
        if bad is not None:  # else: a non-finite validation loss, stopped at its epoch's end
            assert verdict.step <= bad


def test_poor_runs_are_often_stopped_for_a_named_failure() -> None:
    """Ended between chance and half way to good: stopping them saves their compute.
    Measured: 50 of 96 stopped."""
    stopped = [
        verdict
        for run, (verdict, _) in zip(_runs(), _shipped(), strict=True)
        if run["label"] == "poor" and verdict is not None
    ]
    poor = sum(run["label"] == "poor" for run in _runs())
    assert len(stopped) >= 0.4 * poor
    assert {v.kind for v in stopped} <= set(VERDICT_KINDS)


def test_plain_sgd_explosions_are_stopped_at_once_and_stateful_ones_after_the_window() -> None:
    """Measured: plain SGD median 4 steps; momentum, Nesterov and AdamW wait the window
    (explode_window_stateful = 32) before an explosion counts, median 32-60."""
    rules = StabilityRules()
    steps: dict[bool, list[int]] = {True: [], False: []}
    for run, (verdict, at) in zip(_runs(), _shipped(), strict=True):
        if verdict is not None and verdict.kind == "exploded":
            steps[run["optimizer"] != "sgd"].append(at)
    assert statistics.median(steps[False]) <= 8
    assert min(steps[True]) >= rules.explode_window_stateful
    assert statistics.median(steps[True]) <= 2 * rules.explode_window_stateful


@pytest.mark.parametrize("family", FAMILIES)
def test_thresholds_chosen_without_a_family_hold_on_it(family: str) -> None:
    """Held out: chosen on the other five families (the benchmark's quick grid), judged on
    this one. Measured: no good or slow run stopped in any family; at least 89 % of the
    failures caught; a recovered run is stopped in two families (digits_cnn: 1 of 14, the
    others choose collapse_window 16; regression: 2 of 23, AdamW spikes that take ~40 steps
    to come back, which no other family shows, so the others choose a stateful explosion
    window of 8)."""
    runs = _runs()
    rules = stability_holdout.candidates(stability_holdout.QUICK_GRID)
    results = _grid_results(tuple(rules))
    outside = [r["family"] != family for r in runs]
    index = stability_holdout.choose(runs, rules, results, outside)
    held = [r for r, out in zip(runs, outside, strict=True) if not out]
    verdicts = [x for x, out in zip(results[index], outside, strict=True) if not out]
    summary = corpus.summarize(held, verdicts)
    assert summary["stopped"]["good"] == 0
    assert summary["stopped"]["slow"] == 0
    assert summary["stopped"]["recovered"] <= 2
    assert _caught(summary) >= MIN_CAUGHT


@functools.cache
def _grid_results(rules: tuple[StabilityRules, ...]) -> list[list[tuple[Any, Any]]]:
    return [corpus.verdicts(_runs(), r) for r in rules]


def test_the_shipped_defaults_are_the_choice_on_all_families() -> None:
    runs = _runs()
    rules = stability_holdout.candidates(stability_holdout.QUICK_GRID)
    index = stability_holdout.choose(runs, rules, _grid_results(tuple(rules)), [True] * len(runs))
    assert rules[index] == StabilityRules()
