"""Held-out validation of the divergence rules: choose thresholds without a family, test on it.

    python benchmarks/stability_holdout.py [--corpus PATH] [--quick]

For each task family of the corpus (``benchmarks/record_corpus.py``) in turn, the thresholds are
chosen on the other families only, from a grid of candidates around the defaults: the candidate
that stops no good and no slow run there, and among those catches the most failed and
non-finite runs (then: the fewest steps to catch, the median first), wins. It is then evaluated
on the family left out. Printed per held-out family: the runs that failed (ended at chance, or
became non-finite) and how many of them were caught; the steps until the stop, median and
worst; good, slow and middle runs stopped (see ``benchmarks/corpus.py`` for the labels). The
last rows evaluate the shipped defaults (``StabilityRules()``) on every family, and on the
digits traces that chose the first defaults (``tests/stability_tests/traces.json``). A run is
replayed as the training loop feeds the rules: after steps 1, 2, 4, then every
``check_every`` steps and at the end of each epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import multiprocessing
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LABELS, load, summarize, verdicts

from prl_tune.stability import StabilityRules

#: The candidates: every combination of these values (other fields keep their defaults).
GRID: dict[str, Sequence[Any]] = {
    "explode_window": (1, 2, 4),
    "explode_window_stateful": (8, 16, 32, 48),
    "dead_window": (48, 64, 96),
    "dead_tolerance": (0.05, 0.1),
    "collapse_window": (16, 32, 48),
    "sustain_window": (32, 64),
}
QUICK_GRID: dict[str, Sequence[Any]] = {
    "explode_window_stateful": (8, 32),
    "collapse_window": (16, 32),
    "dead_window": (48, 64),
}


def candidates(grid: dict[str, Sequence[Any]]) -> list[StabilityRules]:
    names = list(grid)
    return [
        dataclasses.replace(StabilityRules(), **dict(zip(names, values, strict=True)))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def _rank(result: dict[str, Any]) -> tuple[float, ...]:
    """Lower is better: false stops first, then missed failures, then steps to catch, then
    (stopping a poor run saves its compute) more poor runs stopped."""
    stopped, counts = result["stopped"], result["counts"]
    false = stopped["good"] + stopped["slow"] + stopped["recovered"]
    missed = (counts["failed"] + counts["non-finite"]) - (stopped["failed"] + stopped["non-finite"])
    median = result["median_steps"] if result["median_steps"] is not None else 1e9
    worst = result["worst_steps"] if result["worst_steps"] is not None else 1e9
    return (false, missed, median, worst, -stopped["poor"])


def _verdicts(rules: StabilityRules) -> list[tuple[Any, Any]]:
    return verdicts(load()["runs"], rules)


def choose(
    runs: Sequence[dict[str, Any]],
    rules: Sequence[StabilityRules],
    results: Sequence[Sequence[tuple[Any, Any]]],
    keep: Sequence[bool],
) -> int:
    """The index of the candidate that ranks best on the runs where ``keep`` is true."""
    chosen = [run for run, k in zip(runs, keep, strict=True) if k]

    def rank(index: int) -> tuple[float, ...]:
        subset = [x for x, k in zip(results[index], keep, strict=True) if k]
        return _rank(summarize(chosen, subset))

    return min(range(len(rules)), key=rank)


def row(name: str, result: dict[str, Any], rules: StabilityRules | None) -> str:
    counts, stopped = result["counts"], result["stopped"]
    failed = counts["failed"] + counts["non-finite"]
    caught = stopped["failed"] + stopped["non-finite"]
    median = "-" if result["median_steps"] is None else f"{result['median_steps']:g}"
    worst = "-" if result["worst_steps"] is None else f"{result['worst_steps']:g}"
    chosen = ""
    if rules is not None:
        defaults = StabilityRules()
        changed = {
            f.name: getattr(rules, f.name)
            for f in dataclasses.fields(rules)
            if getattr(rules, f.name) != getattr(defaults, f.name)
        }
        chosen = ", ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"
    return (
        f"| {name} | {caught}/{failed} | {median} | {worst} | {stopped['good']}/{counts['good']} "
        f"| {stopped['recovered']}/{counts['recovered']} | {stopped['slow']}/{counts['slow']} "
        f"| {stopped['poor']}/{counts['poor']} "
        f"| {chosen} |"
    )


HEADER = (
    "| held-out family | failed caught | steps to catch, median | worst | good stopped "
    "| recovered stopped | slow stopped | poor stopped | thresholds chosen without it |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs = load()["runs"]
    families = sorted({r["family"] for r in runs})
    rules = candidates(QUICK_GRID if args.quick else GRID)
    print(f"{len(runs)} runs, {len(families)} families, {len(rules)} candidates", file=sys.stderr)
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = []
        for result in pool.imap(_verdicts, rules):
            results.append(result)
            print(f"\r{len(results)}/{len(rules)} candidates", end="", file=sys.stderr)
    print(file=sys.stderr)
    lines = [HEADER]
    for family in families:
        outside = [r["family"] != family for r in runs]
        index = choose(runs, rules, results, outside)
        held = [r for r in runs if r["family"] == family]
        held_results = [x for x, out in zip(results[index], outside, strict=True) if not out]
        lines.append(row(family, summarize(held, held_results), rules[index]))
    best = choose(runs, rules, results, [True] * len(runs))
    lines.append(row("all families", summarize(runs, results[best]), rules[best]))
    shipped = verdicts(runs, StabilityRules())
    lines.append(row("all, shipped defaults", summarize(runs, shipped), None))
    print("\n".join(lines))
    labels = {name: sum(r["label"] == name for r in runs) for name in LABELS}
    print(f"\nlabels: {labels}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
