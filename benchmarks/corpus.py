"""The stability corpus: load it, label each run by how it ended, and replay it through the rules.

``benchmarks/record_corpus.py`` writes the corpus; ``benchmarks/stability_holdout.py`` and
``tests/stability_tests`` read it through these functions, so "good", "failed" and "slow" mean
the same everywhere.

Labels, from how a run ended (its last epoch), within its *group* (same family, optimizer,
batch size and schedule; only ``lr_max``, ``lr_min`` and the seed differ):

- ``non-finite``: a step loss or the validation loss became NaN or infinite.
- ``good``: it ended within 2 points of the group's best: validation accuracy within 0.02 of the
  best (classification), or validation loss within 0.02 of the best (regression: the targets are
  standardized, so 0.02 is two points of R squared).
- ``failed``: it ended no better than chance (accuracy at most chance + 0.05; regression: R
  squared at most 0.05, a validation loss of at least 0.95) with an ``lr_max`` above a run of
  its group that learned (ended above that level).
- ``slow``: not good, with an ``lr_max`` below every good run of its group (a learning rate too
  small for the budget; at chance or not).
- ``recovered`` and ``poor``: the rest, which ended between chance and good, at or above the
  good LRs (spikes that were survived, noisy large LRs): ``recovered`` when at least half way
  from chance to the group's best, else ``poor``. Stopping a recovered run is a false stop;
  stopping a poor one is no loss.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prl_tune.stability import StabilityMonitor, StabilityRules, Verdict

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "stability_tests" / "corpus.json.gz"
LABELS = ("good", "recovered", "slow", "poor", "failed", "non-finite")
GOOD_MARGIN = 0.02
CHANCE_MARGIN = 0.05


@functools.cache
def load(path: Path = CORPUS) -> dict[str, Any]:
    """The corpus as recorded, with each run's ``label`` and ``chance`` added."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    for run in data["runs"]:
        run["chance"] = data["chance_loss"][run["family"]]
        run["losses"] = [float(v) for v in run["losses"]]
    label(data["runs"])
    return data


def group_key(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run["family"], run["optimizer"], run["batch_size"], run["scheduler"])


def _score(run: dict[str, Any]) -> float | None:
    """Higher is better: the last validation accuracy, or 1 - validation loss (regression)."""
    if run["status"] != "completed" or not all(math.isfinite(v) for v in run["losses"]):
        return None
    if run["chance"] is None:
        loss = run["val_loss"][-1]
        return None if loss is None else 1.0 - loss
    return run["val_accuracy"][-1]


def _chance_score(run: dict[str, Any]) -> float:
    if run["chance"] is None:
        return CHANCE_MARGIN  # R squared
    return 1.0 / round(math.exp(run["chance"])) + CHANCE_MARGIN


def label(runs: Iterable[dict[str, Any]]) -> None:
    """Set every run's ``label`` (see the module's docstring)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[group_key(run)].append(run)
    for members in groups.values():
        scores = {id(run): _score(run) for run in members}
        known = {key: -math.inf if score is None else score for key, score in scores.items()}
        best = max(known.values())
        good_lrs = [r["lr_max"] for r in members if known[id(r)] >= best - GOOD_MARGIN]
        learned = [r["lr_max"] for r in members if known[id(r)] > _chance_score(r)]
        for run in members:
            score = scores[id(run)]
            if score is None:
                run["label"] = "non-finite"
            elif score >= best - GOOD_MARGIN:
                run["label"] = "good"
            elif score <= _chance_score(run) and learned and run["lr_max"] > min(learned):
                run["label"] = "failed"
            elif run["lr_max"] < min(good_lrs):
                run["label"] = "slow"
            elif score >= (best + _chance_score(run)) / 2:
                run["label"] = "recovered"
            else:
                run["label"] = "poor"


def check_steps(total: int, steps_per_epoch: int, check_every: int) -> Iterator[tuple[int, int]]:
    """The chunks ``(first_step, last_step)`` in which the training loop brings losses to the
    host: after steps 1, 2, 4, ... (doubling up to ``check_every``), then every
    ``check_every`` steps, and at the end of each epoch."""
    start = 1
    step = 0
    pending = 0
    while step < total:
        step += 1
        pending += 1
        done_before = step - pending
        if pending >= min(check_every, max(1, done_before)) or step % steps_per_epoch == 0:
            yield start, step
            start, pending = step + 1, 0
    if pending:
        yield start, step


def _dominates(run: dict[str, Any], other: dict[str, Any]) -> bool:
    low = run["lr_min"] if run["lr_min"] is not None else run["lr_max"]
    other_low = other["lr_min"] if other["lr_min"] is not None else other["lr_max"]
    same_start = run["seed"] == other["seed"]  # a study's trials share its seed
    return same_start and run["lr_max"] > other["lr_max"] and low >= other_low


def learned_at(run: dict[str, Any], rules: StabilityRules) -> int | None:
    """The step at which the run's loss first went below its level (see
    ``StabilityMonitor.learned_at``) with ``rules``' tolerance."""
    monitor = StabilityMonitor(
        dataclasses.replace(rules, explode_factor=None, sustain_factor=None, collapse_window=None),
        chance_loss=run["chance"],
    )
    monitor.observe([v for v in run["losses"] if math.isfinite(v)], 1)
    return monitor.learned_at


def known_to_learn(runs: Sequence[dict[str, Any]], rules: StabilityRules) -> list[bool]:
    """For each run: whether a run of its group with a less aggressive range (smaller
    ``lr_max``, ``lr_min`` not larger, the same seed) learned within ``dead_window`` steps
    and did not fail, as a study's memory would know it from earlier trials."""
    window = rules.dead_window or 0
    fast: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        at = learned_at(run, rules)
        if run["label"] not in ("failed", "non-finite") and at is not None and at <= window:
            fast[group_key(run)].append(run)
    return [any(_dominates(run, other) for other in fast[group_key(run)]) for run in runs]


def replay(
    run: dict[str, Any], rules: StabilityRules, *, known: bool = False
) -> tuple[Verdict | None, int | None]:
    """The verdict of ``rules`` on the run, fed as the training loop feeds it, and the step at
    which the run would have stopped (the end of the check that decided); ``(None, None)``
    when the rules let it run. ``known``: the monitor's ``known_to_learn``."""
    losses = run["losses"]
    monitor = StabilityMonitor(
        rules,
        chance_loss=run["chance"],
        known_to_learn=known,
        stateful_optimizer=run["optimizer"] != "sgd",
    )
    per_epoch = run["steps_per_epoch"]
    for first, last in check_steps(len(losses), per_epoch, rules.check_every):
        verdict = monitor.observe(losses[first - 1 : last], first)
        if verdict is not None:
            return verdict, last
        epoch = last // per_epoch
        if last % per_epoch == 0 and epoch <= len(run["val_loss"]):
            if run["val_loss"][epoch - 1] is None:  # the loop stops on a non-finite val loss
                return Verdict("non-finite", last, "non-finite validation loss"), last
    if run["status"] == "diverged":  # a non-finite validation loss after the last epoch kept
        return Verdict("non-finite", len(losses), "non-finite validation loss"), len(losses)
    return None, None


def verdicts(
    runs: Sequence[dict[str, Any]], rules: StabilityRules
) -> list[tuple[Verdict | None, int | None]]:
    """:func:`replay` of every run, each told what :func:`known_to_learn` finds."""
    known = known_to_learn(runs, rules)
    return [replay(run, rules, known=k) for run, k in zip(runs, known, strict=True)]


def summarize(
    runs: Sequence[dict[str, Any]], results: Sequence[tuple[Verdict | None, int | None]]
) -> dict[str, Any]:
    """Per label the runs and the stopped ones; for failed and non-finite runs the steps until
    the stop (median and worst)."""
    counts = {name: 0 for name in LABELS}
    stopped = {name: 0 for name in LABELS}
    catch_steps: list[int] = []
    for run, (verdict, at) in zip(runs, results, strict=True):
        counts[run["label"]] += 1
        if verdict is None or at is None:
            continue
        stopped[run["label"]] += 1
        if run["label"] in ("failed", "non-finite"):
            catch_steps.append(at)
    return {
        "counts": counts,
        "stopped": stopped,
        "median_steps": statistics.median(catch_steps) if catch_steps else None,
        "worst_steps": max(catch_steps) if catch_steps else None,
    }


def evaluate(runs: Sequence[dict[str, Any]], rules: StabilityRules) -> dict[str, Any]:
    """How ``rules`` do on ``runs`` (:func:`summarize` of :func:`verdicts`)."""
    return summarize(runs, verdicts(runs, rules))
