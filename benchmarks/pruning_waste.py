"""Wasted compute of a wide PLRS study, side by side: Optuna's pruners vs prl_tune's rules/memory.

Per task family of ``benchmarks/task_families.py`` (all of them through the same path, the user
task ``"task_families:<family>"`` with ``{"batch_size": B}``): the same TPE sampler and seeds,
a wide space (``lr_max`` log-uniform over [1e-3, 10] for plain SGD, over [1e-4, 1] for SGD with
momentum 0.9, whose effective learning rate is about ten times larger; ``lr_min`` a uniform
fraction of it), several seeds, all arms in one run:

  (a) no pruner                 (b) Optuna MedianPruner (defaults)   (c) Optuna HyperbandPruner
  (d) prl_tune rules only       (e) rules + memory                   (f) (e) wrapping MedianPruner
  (g) (e) with the lr_max range set by the LR range test

Arms (a)-(c) keep only the loop's hard stop on a non-finite loss (a NaN run cannot go on).

Ground truth (the same for every arm, whatever its pruner stopped). With ``C`` classes
(``C = round(exp(CHANCE[family]))``) chance accuracy is ``1/C``; a trial "learned" when its last
validation accuracy is at least half way from ``1/C`` to the study's best.

- A trial "ended unstable" when the training loop stopped it (``pruned_by = "rules"``: a
  non-finite loss, or a prl_tune rule in the arms that have them; prl_tune's classification
  of a finished run is not used, so the truth owes nothing to it), or when
  it ran and its last validation accuracy is <= ``1/C + 0.1`` while its ``lr_max`` is larger
  than that of some trial of the same study that learned (it had a learning rate at which the
  task learns). Memory-pruned trials ran no step; they count as memory-pruned, not as
  unstable.
- A trial was "dead from the start" when it ran, ended unstable, and its per-epoch training
  loss never went below 0.9x the chance loss ``ln C``. "dead > 1 epoch" counts those that ran
  more optimizer steps than one epoch has (the ``step`` of the trial's first epoch entry).

Printed per family, one markdown table (one row per arm, mean over seeds): optimizer steps in
total, steps spent in trials that ended unstable, best validation accuracy (the best trial
value), its difference to arm (a) in points, the steps until the best-so-far reached 99% of the
arm's final best, trials that ended unstable, memory-pruned trials, and dead-from-the-start
trials that ran longer than one epoch. Then the target lines: (e)/(b) unstable steps (target
<= 0.25), (e) and (f) best minus (a) best in points (target >= -0.5), and the dead-from-start
trials over one epoch of each prl_tune arm, summed over seeds (target 0).

``--family`` may be given several times (each family gets its own table); ``--optimizer`` and
``--batch-size`` apply to all of them. ``regression`` is not offered: its metric is not accuracy.

    python benchmarks/pruning_waste.py --family digits_cnn
    python benchmarks/pruning_waste.py --family sequence --optimizer momentum
    python benchmarks/pruning_waste.py --family digits_cnn --family sequence --optimizer momentum
    python benchmarks/pruning_waste.py [--family F ...] [--optimizer sgd|momentum]
        [--batch-size 16] [--seeds 3] [--trials 30] [--epochs 8] [--arms NAME ...]
        [--check-every N]

A quick smoke run: ``--seeds 1 --trials 4 --epochs 2 --arms "a no pruner" "e rules+memory"``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_families import CHANCE, FAMILIES

from prl_tune.config import StudySpec
from prl_tune.hosts.optuna import run_study

ARMS: dict[str, dict[str, Any]] = {
    "a no pruner": {"base": "none", "rules": False, "memory": "off"},
    "b median": {"base": "median", "rules": False, "memory": "off"},
    "c hyperband": {"base": "hyperband", "rules": False, "memory": "off"},
    "d rules": {"base": "none", "rules": True, "memory": "off"},
    "e rules+memory": {"base": "none", "rules": True, "memory": "dominance"},
    "f (e)+median": {"base": "median", "rules": True, "memory": "dominance"},
    "g (e)+range-test": {"base": "none", "rules": True, "memory": "dominance", "range": True},
}
#: ``--family`` choices: every family but regression, whose metric is not accuracy.
CLASSIFIERS = [family for family in FAMILIES if family != "regression"]
#: ``--optimizer``: the ``[optimizer]`` section and the ``lr_max`` range of the space.
OPTIMIZERS: dict[str, tuple[dict[str, Any], tuple[float, float]]] = {
    "sgd": ({"name": "sgd"}, (1e-3, 10.0)),
    "momentum": ({"name": "sgd", "momentum": 0.9}, (1e-4, 1.0)),
}
LEARNED_MARGIN = 0.1  # above chance accuracy + this: the trial learned
DEAD_LOSS = 0.9  # x the chance loss: a trial whose training loss never got below this is dead


def make_spec(
    arm: dict[str, Any],
    seed: int,
    trials: int,
    epochs: int,
    storage: str,
    check_every: int | None = None,
    *,
    family: str = "digits_cnn",
    optimizer: str = "sgd",
    batch_size: int = 16,
) -> StudySpec:
    pruning = {k: v for k, v in arm.items() if k != "range"}
    if check_every is not None:  # the loop's check interval, for every arm
        on = pruning["rules"]
        pruning["rules"] = {"check_every": check_every}
        if not on:
            pruning["rules"].update(explode_factor=False, collapse_window=False)
    if pruning["base"] == "median":
        pruning["n_startup_trials"] = 5  # Optuna's MedianPruner defaults
    section, lr_max = OPTIMIZERS[optimizer]
    return StudySpec.from_dict(
        {
            "study": {"name": f"s{seed}", "storage": storage, "n_trials": trials, "seed": seed},
            "task": {
                "name": f"task_families:{family}",
                "epochs": epochs,
                "device": "cpu",
                "params": {"batch_size": batch_size},
            },
            "optimizer": dict(section),
            "space": {
                "lr_max": "range-test" if arm.get("range") else list(lr_max),
                "lr_min_ratio": [0.0, 1.0],
            },
            "pruning": pruning,
        }
    )


def _number(value: Any) -> float:
    """A history value (a float, or ``"nan"``/``"inf"`` as stored) as a float; nan if missing."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _memory_pruned(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("pruned_by") == "memory"


def _last_accuracy(trial: FrozenTrial) -> float:
    history = trial.user_attrs.get("history") or []
    return _number(history[-1].get("val_accuracy")) if history else math.nan


def ground_truth(trials: list[FrozenTrial], chance_loss: float) -> list[tuple[bool, bool, bool]]:
    """Per trial: (ended unstable, dead from the start, dead and ran longer than one epoch)."""
    classes = round(math.exp(chance_loss))
    level = 1.0 / classes + LEARNED_MARGIN
    # "Learned" for the LR comparison: at least half way from chance to the study's best, so
    # a slow run that barely left chance does not make every larger slow LR look dead.
    ran = [t for t in trials if not _memory_pruned(t) and "lr_max" in t.user_attrs]
    finite = [a for a in (_last_accuracy(t) for t in ran) if math.isfinite(a)]
    well = (max(finite, default=1.0) + 1.0 / classes) / 2
    learned = [float(t.user_attrs["lr_max"]) for t in ran if _last_accuracy(t) >= well]
    lowest_learned = min(learned, default=math.inf)
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        steps = int(attrs.get("steps", 0))
        if _memory_pruned(trial) or steps == 0:
            rows.append((False, False, False))
            continue
        history = attrs.get("history") or []
        at_chance = not _last_accuracy(trial) > level  # nan (no epoch finished) counts too
        stopped = attrs.get("pruned_by") == "rules"  # not prl_tune's classification afterwards
        ended_unstable = stopped or (
            at_chance and float(attrs.get("lr_max", -math.inf)) > lowest_learned
        )
        never_learned = not any(
            _number(h.get("train_loss")) < DEAD_LOSS * chance_loss for h in history
        )
        dead = ended_unstable and never_learned
        per_epoch = int(history[0]["step"]) if history else None
        rows.append((ended_unstable, dead, dead and per_epoch is not None and steps > per_epoch))
    return rows


def analyse(study: optuna.Study, chance_loss: float) -> dict[str, float]:
    trials = sorted(study.trials, key=lambda t: t.number)
    steps = [int(t.user_attrs.get("steps", 0)) for t in trials]
    values = [
        t.value if t.state == TrialState.COMPLETE and t.value is not None else -math.inf
        for t in trials
    ]
    best = max(values, default=-math.inf)
    cumulative, reached = 0, 0
    for used, value in zip(steps, values, strict=True):
        cumulative += used
        if value >= 0.99 * best:
            reached = cumulative
            break
    truth = ground_truth(trials, chance_loss)
    return {
        "steps": float(sum(steps)),
        "unstable_steps": float(sum(s for s, row in zip(steps, truth, strict=True) if row[0])),
        "best": best,
        "steps_to_99": float(reached),
        "unstable_trials": float(sum(row[0] for row in truth)),
        "memory_pruned": float(sum(_memory_pruned(t) for t in trials)),
        "dead": float(sum(row[1] for row in truth)),
        "dead_long": float(sum(row[2] for row in truth)),
    }


def run_family(family: str, args: argparse.Namespace, folder: Path) -> dict[str, list[dict]]:
    chance_loss = CHANCE[family]
    assert chance_loss is not None
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.arms}
    for name in args.arms:
        for seed in range(args.seeds):
            db = f"{family}-{args.optimizer}-{name.split()[0]}{seed}.db"
            spec = make_spec(
                ARMS[name],
                seed,
                args.trials,
                args.epochs,
                f"sqlite:///{folder / db}",
                args.check_every,
                family=family,
                optimizer=args.optimizer,
                batch_size=args.batch_size,
            )
            t0 = time.perf_counter()
            study = run_study(spec, stream=None)
            row = analyse(study, chance_loss)
            results[name].append(row)
            print(
                f"{family} {name:<18} seed {seed}: best {row['best']:.4f}, "
                f"steps {row['steps']:.0f}, unstable steps {row['unstable_steps']:.0f}, "
                f"dead > 1 epoch {row['dead_long']:.0f}, {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return results


def report(family: str, args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    mean = statistics.fmean
    section, lr_max = OPTIMIZERS[args.optimizer]
    chance_loss = CHANCE[family]
    assert chance_loss is not None
    optimizer = "SGD momentum 0.9" if section.get("momentum") else "plain SGD"
    print(
        f"\n### {family}: {optimizer}, batch {args.batch_size}, lr_max log-uniform "
        f"[{lr_max[0]:g}, {lr_max[1]:g}], {args.seeds} seeds x {args.trials} trials x "
        f"{args.epochs} epochs, chance accuracy 1/{round(math.exp(chance_loss))}\n"
    )
    print(
        "| arm | steps | unstable steps | best acc | vs (a), points | steps to 99% "
        "| unstable trials | memory-pruned | dead > 1 epoch |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = results.get("a no pruner")
    best_a = mean(r["best"] for r in base) if base else None

    def delta(name: str) -> float | None:
        if best_a is None or name not in results:
            return None
        return 100 * (mean(r["best"] for r in results[name]) - best_a)

    for name, rows in results.items():
        d = delta(name)
        print(
            f"| {name} | {mean(r['steps'] for r in rows):.0f} "
            f"| {mean(r['unstable_steps'] for r in rows):.0f} "
            f"| {mean(r['best'] for r in rows):.4f} "
            f"| {'-' if d is None else f'{d:+.2f}'} "
            f"| {mean(r['steps_to_99'] for r in rows):.0f} "
            f"| {mean(r['unstable_trials'] for r in rows):.1f} "
            f"| {mean(r['memory_pruned'] for r in rows):.1f} "
            f"| {mean(r['dead_long'] for r in rows):.1f} |"
        )
    print()
    if "b median" in results and "e rules+memory" in results:
        b = mean(r["unstable_steps"] for r in results["b median"])
        e = mean(r["unstable_steps"] for r in results["e rules+memory"])
        ratio = f"{e / b:.2f}" if b else f"n/a ((b) has no unstable steps, (e) {e:.0f})"
        print(f"(e)/(b) unstable steps: {ratio} (target <= 0.25)")
    for name in ("e rules+memory", "f (e)+median"):
        d = delta(name)
        if d is not None:
            print(f"({name[0]}) best - (a) best: {d:+.2f} points (target >= -0.5)")
    for name, rows in results.items():
        if ARMS[name]["rules"]:
            dead = sum(r["dead_long"] for r in rows)
            print(
                f"dead-from-start trials over one epoch in ({name[0]}): {dead:.0f} "
                f"(target 0; sum over {len(rows)} seeds)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        action="append",
        choices=CLASSIFIERS,
        help="task family of benchmarks/task_families.py; repeat for several (default digits_cnn)",
    )
    parser.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default="sgd",
        help="sgd: plain SGD, lr_max in [1e-3, 10]; momentum: SGD momentum 0.9, in [1e-4, 1]",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--arms", nargs="*", default=list(ARMS), choices=list(ARMS), help="arms (default all)"
    )
    parser.add_argument(
        "--check-every", type=int, default=None, help="steps between checks (default: rules')"
    )
    args = parser.parse_args()
    families = list(dict.fromkeys(args.family or ["digits_cnn"]))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for family in families:
            report(family, args, run_family(family, args, Path(folder)))
            sys.stdout.flush()
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
