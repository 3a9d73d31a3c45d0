"""Wasted compute of a wide PLRS study, side by side: Optuna's pruners vs prl_tune's rules/memory.

Per task family of ``benchmarks/task_families.py`` (all of them through the same path, the user
task ``"task_families:<family>"`` with ``{"batch_size": B}``): the same TPE sampler and seeds,
a wide space (``lr_max`` log-uniform over [1e-3, 10] for plain SGD, over [1e-4, 1] for SGD with
momentum 0.9, whose effective learning rate is about ten times larger, over [1e-5, 0.1] for
AdamW; ``lr_min`` a uniform fraction of it), several seeds, all arms in one run:

  (a) no pruner                 (b) Optuna MedianPruner (defaults)   (c) Optuna HyperbandPruner
  (d) prl_tune rules only       (e) rules + memory                   (f) (e) wrapping MedianPruner
  (g) (e) with the lr_max range set by the LR range test

Arms (a)-(c) keep only the loop's hard stop on a non-finite loss (a NaN run cannot go on).

Ground truth (the same for every arm, whatever its pruner stopped): what each trial's
configuration does when it is trained to the end with no pruner and no rules (arm (a)'s
setting; a trial that ran all its epochs is its own full run, any other is re-trained once,
cached per study seed and parameters, and a trial that went non-finite stays non-finite, since
every arm keeps the loop's hard stop). So a trial that a pruner stopped before it collapsed
counts as unstable in every arm, and a trial the rules stopped that would have recovered counts
as a false stop, not as unstable. With ``C`` classes (``C = round(exp(CHANCE[family]))``)
chance accuracy is ``1/C``; a trial "learned" when its full run's last validation accuracy is at
least half way from ``1/C`` to the study's best.

- A trial "ended unstable" when its full run went non-finite, or ended at chance
  (last validation accuracy ``<= 1/C + 0.1``) while its ``lr_max`` is larger than that of some
  trial of the same study that learned (the task learns at a gentler rate). Memory-pruned
  trials ran no step; they count as memory-pruned, not as unstable.
- A trial was "dead from the start" when it ended unstable and its full run never learned: its
  running training loss (the rules' smoothing) never went below 0.9x its level, the smaller of
  the chance loss ``ln C`` and its first loss (``learned_at``, recorded on every trial). A run
  that learned and then fell back to chance collapsed; it is not dead from the start.
  "dead > 1 epoch" counts dead trials that ran more optimizer steps than one epoch has.
- A "false stop" is a trial that the rules stopped (``pruned_by = "rules"``, not non-finite)
  whose full run learned.

Printed per family, one markdown table (one row per arm, mean over seeds): optimizer steps in
total, steps spent in trials that ended unstable, best validation accuracy (the best trial
value), its difference to arm (a) in points, the steps until the best-so-far reached 99% of the
arm's final best, trials that ended unstable, memory-pruned trials, dead-from-the-start
trials that ran longer than one epoch, and false stops. Then the target lines: (e)/(b)
unstable steps (target <= 0.25), (e) and (f) best minus (a) best in points (target >= -0.5),
and the dead-from-start trials over one epoch of each prl_tune arm, summed over seeds
(target 0).

``--family`` may be given several times (each family gets its own table); ``--optimizer`` and
``--batch-size`` apply to all of them. ``regression`` is not offered: its metric is not accuracy.

    python benchmarks/pruning_waste.py --family digits_cnn
    python benchmarks/pruning_waste.py --family sequence --optimizer momentum
    python benchmarks/pruning_waste.py --family digits_cnn --family sequence --optimizer momentum
    python benchmarks/pruning_waste.py [--family F ...] [--optimizer sgd|momentum|adamw]
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
from typing import Any, NamedTuple

import optuna
from optuna.trial import FixedTrial, FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_families import CHANCE, FAMILIES

from prl_tune.config import LossRange, StudySpec, train_trial
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
    "adamw": ({"name": "adamw"}, (1e-5, 0.1)),
}
#: How the tables name each ``--optimizer``.
OPTIMIZER_NAMES = {"sgd": "plain SGD", "momentum": "SGD momentum 0.9", "adamw": "AdamW"}
LEARNED_MARGIN = 0.1  # above chance accuracy + this: the trial learned


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


class FullRun(NamedTuple):
    """What a configuration does trained to the end with no pruner and no rules."""

    accuracy: float  # last validation accuracy (nan when it went non-finite)
    learned: bool  # its running training loss went below 0.9x its level (learned_at)
    nonfinite: bool


def _ran_to_the_end(trial: FrozenTrial, epochs: int) -> bool:
    history = trial.user_attrs.get("history") or []
    return trial.state == TrialState.COMPLETE and len(history) == epochs


def full_run(trial: FrozenTrial, full: StudySpec, cache: dict[Any, FullRun]) -> FullRun:
    """The trial's configuration trained to the end under ``full`` (arm (a)'s spec of the same
    study seed): its own history when it ran all epochs, else a re-training, cached by
    parameters (the trials of a study share its seed, so the run is the same)."""
    attrs = trial.user_attrs
    history = attrs.get("history") or []
    if _ran_to_the_end(trial, full.task.epochs):
        return FullRun(_number(history[-1].get("val_accuracy")), "learned_at" in attrs, False)
    if attrs.get("pruned_by") == "rules" and attrs.get("instability") == "non-finite":
        return FullRun(math.nan, "learned_at" in attrs, True)  # every arm's loop stops there
    key = tuple(sorted(trial.params.items()))
    if key not in cache:
        config = full.space.suggest(FixedTrial(trial.params))
        for name in ("lr_min", "lr_max"):  # the same configuration as the trial's
            assert math.isclose(config[name], float(attrs[name]), rel_tol=1e-9), (name, config)
        progress = LossRange()
        result = train_trial(full, config, progress=progress)
        cache[key] = FullRun(
            result.history[-1].val_accuracy if result.history else math.nan,
            progress.learned_at is not None,
            result.diverged,
        )
    return cache[key]


class Truth(NamedTuple):
    unstable: bool
    dead: bool
    dead_long: bool
    false_stop: bool


def ground_truth(
    trials: list[FrozenTrial], runs: list[FullRun | None], chance_loss: float
) -> list[Truth]:
    """Per trial, from its full run (``None``: memory-pruned, never ran): whether it ended
    unstable, was dead from the start (and ran longer than one epoch), or was a false stop."""
    classes = round(math.exp(chance_loss))
    level = 1.0 / classes + LEARNED_MARGIN
    finite = [r.accuracy for r in runs if r is not None and math.isfinite(r.accuracy)]
    # "Learned" for the LR comparison: at least half way from chance to the study's best, so
    # a slow run that barely left chance does not make every larger slow LR look dead.
    well = (max(finite, default=1.0) + 1.0 / classes) / 2
    learned = [
        float(t.user_attrs["lr_max"])
        for t, r in zip(trials, runs, strict=True)
        if r is not None and r.accuracy >= well
    ]
    lowest_learned = min(learned, default=math.inf)
    rows = []
    for trial, run in zip(trials, runs, strict=True):
        attrs = trial.user_attrs
        steps = int(attrs.get("steps", 0))
        if run is None or steps == 0:
            rows.append(Truth(False, False, False, False))
            continue
        at_chance = not run.accuracy > level  # nan (non-finite) counts too
        unstable = run.nonfinite or (
            at_chance and float(attrs.get("lr_max", -math.inf)) > lowest_learned
        )
        dead = unstable and not run.learned
        history = attrs.get("history") or []
        per_epoch = int(history[0]["step"]) if history else None
        dead_long = dead and per_epoch is not None and steps > per_epoch
        stopped = attrs.get("pruned_by") == "rules" and attrs.get("instability") != "non-finite"
        rows.append(Truth(unstable, dead, dead_long, stopped and run.accuracy >= well))
    return rows


def analyse(
    study: optuna.Study, chance_loss: float, full: StudySpec, cache: dict[Any, FullRun]
) -> dict[str, float]:
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
    runs = [
        None if _memory_pruned(t) or "lr_max" not in t.user_attrs else full_run(t, full, cache)
        for t in trials
    ]
    truth = ground_truth(trials, runs, chance_loss)
    return {
        "steps": float(sum(steps)),
        "unstable_steps": float(
            sum(s for s, row in zip(steps, truth, strict=True) if row.unstable)
        ),
        "best": best,
        "steps_to_99": float(reached),
        "unstable_trials": float(sum(row.unstable for row in truth)),
        "memory_pruned": float(sum(_memory_pruned(t) for t in trials)),
        "dead": float(sum(row.dead for row in truth)),
        "dead_long": float(sum(row.dead_long for row in truth)),
        "false_stops": float(sum(row.false_stop for row in truth)),
    }


def run_family(family: str, args: argparse.Namespace, folder: Path) -> dict[str, list[dict]]:
    chance_loss = CHANCE[family]
    assert chance_loss is not None
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.arms}
    caches: dict[int, dict[Any, FullRun]] = {seed: {} for seed in range(args.seeds)}
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
            seconds = time.perf_counter() - t0
            full = make_spec(
                ARMS["a no pruner"],
                seed,
                args.trials,
                args.epochs,
                f"sqlite:///{folder / 'unused.db'}",  # full runs train, store nothing
                family=family,
                optimizer=args.optimizer,
                batch_size=args.batch_size,
            )
            row = analyse(study, chance_loss, full, caches[seed])
            results[name].append(row)
            print(
                f"{family} {name:<18} seed {seed}: best {row['best']:.4f}, "
                f"steps {row['steps']:.0f}, unstable steps {row['unstable_steps']:.0f}, "
                f"dead > 1 epoch {row['dead_long']:.0f}, false stops {row['false_stops']:.0f}, "
                f"{seconds:.0f} s (+{time.perf_counter() - t0 - seconds:.0f} s of full runs)",
                file=sys.stderr,
                flush=True,
            )
    return results


def report(family: str, args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    mean = statistics.fmean
    lr_max = OPTIMIZERS[args.optimizer][1]
    chance_loss = CHANCE[family]
    assert chance_loss is not None
    optimizer = OPTIMIZER_NAMES[args.optimizer]
    print(
        f"\n### {family}: {optimizer}, batch {args.batch_size}, lr_max log-uniform "
        f"[{lr_max[0]:g}, {lr_max[1]:g}], {args.seeds} seeds x {args.trials} trials x "
        f"{args.epochs} epochs, chance accuracy 1/{round(math.exp(chance_loss))}\n"
    )
    print(
        "| arm | steps | unstable steps | best acc | vs (a), points | steps to 99% "
        "| unstable trials | memory-pruned | dead > 1 epoch | false stops |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
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
            f"| {mean(r['dead_long'] for r in rows):.1f} "
            f"| {mean(r['false_stops'] for r in rows):.1f} |"
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
