"""Compute to a good configuration: optimizer steps (and wall seconds) until a study's best
trial is within one point of the best any arm found, for every arm in one run (issue 14).

Users adopt prl_tune to spend fewer GPU hours finding good PLRS bounds; pruning unstable ranges
is a means, compute to a good configuration is the end. Every arm searches the same space:
PLRS with ``lr_max`` log-uniform over a wide range (``[1e-4, 1]`` for SGD with momentum 0.9,
``[1e-3, 10]`` for plain SGD, ``[1e-5, 0.1]`` for AdamW, as ``benchmarks/pruning_waste.py``'s
``OPTIMIZERS``) and ``lr_min_ratio`` uniform in ``[0, 1]``, on the offline task families of
``benchmarks/task_families.py``, each at its batch size of :data:`FAMILIES` (``digits_mlp`` at
batch 6 is the family with long epochs, 240 optimizer steps each, where stopping inside an
epoch should matter). A seed is the study's seed: the sampler's and the training's (model
initialization and batch order), so within a seed every arm trains from the same start.

Arms (:data:`ARMS`: each is what its study file adds to the common one, so an arm is one line):

- ``optuna-tpe``, ``optuna-tpe+median``, ``optuna-tpe+hyperband``: plain Optuna, through
  prl_tune's Optuna host with the rules, the memory and the warm start off (only the loop's
  hard stop on a non-finite loss is left, as in ``pruning_waste.py``): prl_tune's TPE sampler
  (multivariate, ``min(10, trials // 3)`` start-up trials), no pruner / Optuna's
  ``MedianPruner`` defaults /
  ``HyperbandPruner`` (``min_resource=1``, ``reduction_factor=3``, ``max_resource`` = epochs).
- ``ray-asha-random``: plain Ray Tune, through prl_tune's Ray host (``backend = "ray"``) with
  random search, Ray's ``ASHAScheduler`` (grace period 1 epoch, reduction factor 3), rules,
  memory and warm start off, one trial at a time on a local Ray of one CPU started once for
  the whole run (its wall seconds include Ray Tune's start of each study, about 6 s).
- ``prl_tune-rules+memory``: the divergence rules and the unstable-range memory, no base pruner,
  no warm start (prl_tune's defaults before the warm start).
- ``prl_tune-warm-trials``: that, plus the warm start's first two trials from the LR range test
  (``warm_start = "range-test"``), searching the file's whole ``lr_max`` range after them.
- ``prl_tune-defaults``: what ``StudySpec.from_dict`` gives a user whose file sets only the
  space: today the rules, the memory and the warm start with its 64x ``lr_max`` window
  (``warm_start_span = 64``).
- ``prl_tune-defaults+median``, ``prl_tune-defaults+hyperband``: the defaults with Optuna's
  ``MedianPruner`` / ``HyperbandPruner`` (as in the plain arms) as the base pruner: multi-fidelity
  over epochs, with the divergence rules still stopping a run inside any rung.

Measures, per (family, arm, seed), the curve over trials in completion order of (cumulative
optimizer steps, wall seconds since the study started, best-so-far), where the steps count
every trial, pruned, stopped and failed ones included (their ``steps`` attribute; a
memory-pruned trial ran none), plus whatever the study ran outside its trials (the LR range
test's steps, :func:`setup_steps`). The best-so-far is the best value (last validation
accuracy) of the *completed* trials: what the study would hand the user. The family's target is
the best final value of any arm and seed minus :data:`TARGET_MARGIN` (one point); an arm's seed
reaches it at the first trial whose completion makes the best-so-far ``>= target`` (never:
``inf``; medians count it as ``inf``).

"Steps in unstable trials" uses ``pruning_waste.py``'s definition (``ground_truth``), judged on
what each trial itself ran (no re-training): a trial that went non-finite, or whose last
validation accuracy is within 0.1 of chance (or that has none: the rules stopped it in its
first epoch) while a trial of the same study with a smaller ``lr_max`` learned (half way from
chance to the study's best). A slow trial that a base pruner stopped early at chance can count
too, when its ``lr_max`` is above one that learned.

Printed per family, one markdown table (median and worst over seeds of the steps and wall
seconds to the target, seeds that reached it, mean final best, mean steps in unstable trials,
the mean trials stopped by the memory / the rules / a non-finite loss / the base pruner per
seed, and the ratio of the arm's median steps to the best plain-Optuna arm's), then the line of
issue 14's target: defaults / best plain Optuna (target <= 0.5) and the defaults' final best
minus the best plain-Optuna final best in points (target >= -0.5).

    python benchmarks/compute_to_target.py --json /tmp/ctt/baseline.json
    python benchmarks/compute_to_target.py --family sequence --arms optuna-tpe prl_tune-defaults
    python benchmarks/compute_to_target.py --report /tmp/ctt/baseline.json [more.json ...]
    python benchmarks/compute_to_target.py [--family F ...] [--seeds 5] [--trials 30]
        [--epochs 12] [--arms NAME ...] [--optimizer sgd|momentum|adamw] [--json PATH]

``--report`` re-prints the tables from saved runs without training; several files are merged
(a later file's run of the same family, arm and seed replaces an earlier one), so a new arm run
alone can be compared with a saved baseline (the wall seconds then come from different runs).
A smoke run (under 2 minutes): ``--seeds 1 --trials 3 --epochs 2 --family digits_cnn``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pruning_waste import OPTIMIZER_NAMES, OPTIMIZERS, FullRun, ground_truth
from task_families import CHANCE
from task_families import FAMILIES as TASKS

from prl_tune.config import StudySpec
from prl_tune.store import stored_range_test, trial_attrs, trial_steps

_HERE = Path(__file__).resolve().parent

#: The plain arms' ``[space]``: the file's range from the first trial on, whatever prl_tune's
#: default warm start is.
_PLAIN_SPACE = {"warm_start": "none"}
#: The arms: what each adds to the common study file, section by section. ``{}`` is a user's
#: study file with no ``[pruning]`` section and no other setting than the space.
ARMS: dict[str, dict[str, dict[str, Any]]] = {
    "optuna-tpe": {
        "space": _PLAIN_SPACE,
        "pruning": {"base": "none", "rules": False, "memory": "off"},
    },
    "optuna-tpe+median": {
        "space": _PLAIN_SPACE,
        "pruning": {"base": "median", "rules": False, "memory": "off"},
    },
    "optuna-tpe+hyperband": {
        "space": _PLAIN_SPACE,
        "pruning": {"base": "hyperband", "rules": False, "memory": "off"},
    },
    "ray-asha-random": {
        "study": {"backend": "ray", "sampler": "random"},
        "space": _PLAIN_SPACE,
        "pruning": {"base": "asha", "rules": False, "memory": "off"},
    },
    # The defaults before the warm start: the divergence rules and the memory, no base pruner.
    "prl_tune-rules+memory": {"space": _PLAIN_SPACE},
    # Each lever on its own: the warm start's first trials alone, then with the search window.
    "prl_tune-warm-trials": {"space": {"warm_start": "range-test", "warm_start_span": 0}},
    "prl_tune-defaults": {},
    # Multi-fidelity on top of the defaults: a base pruner's rungs over epochs, the rules
    # inside every rung.
    "prl_tune-defaults+median": {"pruning": {"base": "median"}},
    "prl_tune-defaults+hyperband": {"pruning": {"base": "hyperband"}},
}
#: The arms the ratio column divides by (the best of them, by median steps to the target).
PLAIN_OPTUNA = ("optuna-tpe", "optuna-tpe+median", "optuna-tpe+hyperband")
DEFAULTS = "prl_tune-defaults"
#: Family -> batch size. ``sequence`` at 48 is issue 14's task (32 steps per epoch);
#: ``digits_mlp`` at 6 has 240 steps per epoch.
FAMILIES: dict[str, int] = {"digits_cnn": 32, "sequence": 48, "transformer": 64, "digits_mlp": 6}
#: The target is the best final value of any arm and seed minus this (one point of accuracy).
TARGET_MARGIN = 0.01
#: Issue 14's targets: defaults / best plain Optuna, and the final best's difference in points.
RATIO_TARGET, BEST_TARGET = 0.5, -0.5
_FORMAT = 1  # of the --json file


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial, as the curve and the table need it."""

    number: int
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None  # the trial's value when it completed
    steps: int  # optimizer steps it ran
    seconds: float  # wall seconds from the study's start to the trial's end
    stopped_by: str | None  # "memory", "rules", "non-finite", "base" or None
    lr_max: float | None
    unstable: bool  # ended unstable (``pruning_waste.ground_truth``, on its own run)
    # Why the rules stopped it or ``teach`` found it unstable ("exploded", "dead", ...).
    instability: str | None = None
    last_accuracy: float | None = None  # its last epoch's validation accuracy, if it had one


@dataclass(frozen=True)
class Run:
    """One study: a (family, arm, seed) and its trials in completion order."""

    family: str
    arm: str
    seed: int
    setup_steps: int  # steps run outside the trials (the LR range test)
    seconds: float
    trials: tuple[TrialRecord, ...]


class Point(NamedTuple):
    """The study after a trial: cumulative optimizer steps, wall seconds, best-so-far."""

    steps: int
    seconds: float
    best: float


def curve(run: Run) -> list[Point]:
    """One point per trial in completion order; steps include every trial and the set-up, the
    best-so-far only completed trials with a finite value (``-inf`` before the first)."""
    points, steps, best = [], run.setup_steps, -math.inf
    for trial in run.trials:
        steps += trial.steps
        if trial.state == "COMPLETE" and trial.value is not None and math.isfinite(trial.value):
            best = max(best, trial.value)
        points.append(Point(steps, trial.seconds, best))
    return points


def final_best(run: Run) -> float:
    """The study's best completed value (``-inf`` when no trial completed)."""
    points = curve(run)
    return points[-1].best if points else -math.inf


def reached(points: Sequence[Point], target: float) -> Point | None:
    """The first point whose best-so-far is ``>= target`` (a finite best); ``None`` if none."""
    for point in points:
        if math.isfinite(point.best) and point.best >= target:
            return point
    return None


def unstable_until(run: Run, target: float) -> int:
    """Steps in the run's unstable trials up to the trial that reached ``target`` (that trial
    included), or in all of them when it never did."""
    total = 0
    for trial, point in zip(run.trials, curve(run), strict=True):
        total += trial.steps if trial.unstable else 0
        if math.isfinite(point.best) and point.best >= target:
            break
    return total


def family_target(runs: Iterable[Run]) -> float:
    """The best final value of any run, minus :data:`TARGET_MARGIN`."""
    return max((final_best(run) for run in runs), default=-math.inf) - TARGET_MARGIN


@dataclass(frozen=True)
class ArmSummary:
    """An arm's seeds on one family, against the family's target."""

    seeds: int
    reached: int
    median_steps: float  # inf when half the seeds or more did not reach the target
    worst_steps: float
    median_seconds: float
    worst_seconds: float
    mean_best: float  # over the seeds with a completed trial (nan if none)
    unstable_steps: float  # mean over seeds
    # The part of them run until the target was reached (:func:`unstable_until`): the most a
    # lever that only avoids unstable ranges could save of the steps to the target.
    unstable_before: float
    stops: dict[str, float]  # mean trials per seed stopped by each cause

    @classmethod
    def of(cls, runs: Sequence[Run], target: float) -> ArmSummary:
        hits = [reached(curve(run), target) for run in runs]
        steps = [math.inf if hit is None else float(hit.steps) for hit in hits]
        seconds = [math.inf if hit is None else hit.seconds for hit in hits]
        bests = [b for b in map(final_best, runs) if math.isfinite(b)]
        causes = ("memory", "rules", "non-finite", "base")
        return cls(
            seeds=len(runs),
            reached=sum(hit is not None for hit in hits),
            median_steps=statistics.median(steps),
            worst_steps=max(steps),
            median_seconds=statistics.median(seconds),
            worst_seconds=max(seconds),
            mean_best=statistics.fmean(bests) if bests else math.nan,
            unstable_steps=statistics.fmean(
                sum(t.steps for t in run.trials if t.unstable) for run in runs
            ),
            unstable_before=statistics.fmean(unstable_until(run, target) for run in runs),
            stops={
                cause: statistics.fmean(
                    sum(t.stopped_by == cause for t in run.trials) for run in runs
                )
                for cause in causes
            },
        )


def best_plain(summaries: Mapping[str, ArmSummary]) -> str | None:
    """The plain-Optuna arm with the fewest median steps to the target (then the fewest worst
    steps, then the higher mean final best); ``None`` if none was run."""
    plain = [name for name in PLAIN_OPTUNA if name in summaries]
    if not plain:
        return None
    return min(
        plain,
        key=lambda n: (
            summaries[n].median_steps,
            summaries[n].worst_steps,
            -summaries[n].mean_best,
        ),
    )


def ratio(value: float, base: float) -> float:
    """``value / base`` of two step counts, either possibly ``inf`` (never reached): ``nan``
    when the base never reached the target, ``inf`` when only ``value`` did not."""
    if not math.isfinite(base) or base <= 0:
        return math.nan
    return value / base


# ---------------------------------------------------------------- running the studies


def study_dict(
    arm: Mapping[str, Mapping[str, Any]],
    *,
    family: str,
    seed: int,
    trials: int,
    epochs: int,
    optimizer: str,
    folder: Path,
) -> dict[str, Any]:
    """The study file of one (family, arm, seed): the common sections, then the arm's."""
    section, lr_max = OPTIMIZERS[optimizer]
    data: dict[str, dict[str, Any]] = {
        "study": {
            "name": f"s{seed}",
            "storage": f"sqlite:///{folder / 'study.db'}",
            "n_trials": trials,
            "seed": seed,
        },
        "task": {
            "name": f"task_families:{family}",
            "epochs": epochs,
            "device": "cpu",
            "params": {"batch_size": FAMILIES[family]},
        },
        "optimizer": dict(section),
        "space": {"lr_max": list(lr_max), "lr_min_ratio": [0.0, 1.0]},
        # Read by the Ray backend only: one trial at a time, Ray's files in the run's folder.
        "ray": {"max_concurrent": 1, "cpus_per_trial": 1.0, "storage_path": str(folder)},
    }
    for name, values in arm.items():
        data.setdefault(name, {}).update(copy.deepcopy(dict(values)))
    return data


def setup_steps(study: optuna.Study) -> int:
    """Optimizer steps the study ran outside its trials: the LR range test's, if it ran one."""
    test = stored_range_test(study)
    return 0 if test is None else len(test.lrs)


def _stopped_by(attrs: Mapping[str, Any]) -> str | None:
    by = attrs.get("pruned_by")
    if by == "rules" and attrs.get("instability") == "non-finite":
        return "non-finite"
    return by if isinstance(by, str) else None


def _last_accuracy(attrs: Mapping[str, Any]) -> float:
    history = attrs.get("history") or []
    try:
        return float(history[-1]["val_accuracy"])
    except (IndexError, KeyError, TypeError, ValueError):
        return math.nan


def records_of(study: optuna.Study, started: float, chance_loss: float) -> list[TrialRecord]:
    """The study's finished trials in completion order, each judged unstable or not."""
    merged = trial_attrs(study)  # with the verdicts a Ray scheduler records on the study
    trials = []
    for trial in study.get_trials(deepcopy=True):
        if trial.state.is_finished():
            trial.user_attrs = merged[trial.number]
            trials.append(trial)
    trials.sort(key=lambda t: (t.datetime_complete, t.number))
    runs = [
        None
        if t.user_attrs.get("pruned_by") == "memory" or "lr_max" not in t.user_attrs
        else FullRun(
            _last_accuracy(t.user_attrs),
            "learned_at" in t.user_attrs,
            t.user_attrs.get("instability") == "non-finite",
        )
        for t in trials
    ]
    truth = ground_truth(trials, runs, chance_loss)
    return [
        TrialRecord(
            number=t.number,
            state=t.state.name,
            value=t.value if t.state == TrialState.COMPLETE else None,
            steps=trial_steps(t),
            seconds=_seconds(t, started),
            stopped_by=_stopped_by(t.user_attrs),
            lr_max=float(t.user_attrs["lr_max"]) if "lr_max" in t.user_attrs else None,
            unstable=row.unstable,
            instability=t.user_attrs.get("instability"),
            last_accuracy=_finite(_last_accuracy(t.user_attrs)),
        )
        for t, row in zip(trials, truth, strict=True)
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _seconds(trial: FrozenTrial, started: float) -> float:
    end = trial.datetime_complete
    return math.nan if end is None else end.timestamp() - started


def run_one(family: str, arm: str, seed: int, args: argparse.Namespace, folder: Path) -> Run:
    """Run one study in a folder of its own and read it back."""
    chance_loss = CHANCE[family]
    assert chance_loss is not None
    spec = StudySpec.from_dict(
        study_dict(
            ARMS[arm],
            family=family,
            seed=seed,
            trials=args.trials,
            epochs=args.epochs,
            optimizer=args.optimizer,
            folder=folder,
        )
    )
    started = time.time()
    if spec.study.backend == "ray":
        from prl_tune.hosts.ray import run_study_ray

        study = run_study_ray(spec, stream=None)
    else:
        from prl_tune.hosts.optuna import run_study

        study = run_study(spec, stream=None)
    seconds = time.time() - started
    return Run(
        family,
        arm,
        seed,
        setup_steps(study),
        seconds,
        tuple(records_of(study, started, chance_loss)),
    )


def start_ray() -> None:
    """A local Ray of one CPU whose workers import what this process imports."""
    import logging

    import ray

    paths = [str(_HERE), os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # Ray workers inherit it
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"], "OMP_NUM_THREADS": "1"}},
    )


def steps_per_epoch(family: str) -> int:
    import torch

    task = TASKS[family](seed=0, device=torch.device("cpu"), batch_size=FAMILIES[family])
    return len(task.train_loader)  # type: ignore[arg-type]


def warm_up(families: Iterable[str], args: argparse.Namespace, root: Path) -> None:
    """One untimed 1-trial, 1-epoch study per family, so that no arm's first study pays for
    the first imports, the data loading and the first calls of torch's kernels."""
    from prl_tune.hosts.optuna import run_study

    for family in families:
        folder = root / f"warm-up-{family}"
        folder.mkdir()
        data = study_dict(
            ARMS["optuna-tpe"],
            family=family,
            seed=0,
            trials=1,
            epochs=1,
            optimizer=args.optimizer,
            folder=folder,
        )
        run_study(StudySpec.from_dict(data), stream=None)


def run_all(args: argparse.Namespace, families: list[str]) -> list[Run]:
    runs: list[Run] = []
    start = time.perf_counter()
    uses_ray = any(ARMS[arm].get("study", {}).get("backend") == "ray" for arm in args.arms)
    if uses_ray:
        start_ray()
        import prl_tune.hosts.ray  # noqa: F401  (its imports are not the first study's cost)
    try:
        with tempfile.TemporaryDirectory(prefix="ctt-") as root:
            warm_up(families, args, Path(root))
            for family in families:  # the arms of a seed side by side: the same machine load
                for seed in range(args.seeds):
                    for arm in args.arms:
                        folder = Path(root) / f"{family}-{arm}-{seed}"
                        folder.mkdir()
                        run = run_one(family, arm, seed, args, folder)
                        runs.append(run)
                        print(_progress_line(run, time.perf_counter() - start), file=sys.stderr)
    finally:
        if uses_ray:
            import ray

            ray.shutdown()
    return runs


def _progress_line(run: Run, elapsed: float) -> str:
    steps = curve(run)[-1].steps if run.trials else run.setup_steps
    stops = ", ".join(
        f"{cause} {n}"
        for cause in ("memory", "rules", "non-finite", "base")
        if (n := sum(t.stopped_by == cause for t in run.trials))
    )
    return (
        f"[{elapsed:6.0f} s] {run.family} {run.arm} seed {run.seed}: best "
        f"{final_best(run):.4f}, {steps:,} steps, {len(run.trials)} trials"
        f"{f' (stopped: {stops})' if stops else ''}, {run.seconds:.0f} s"
    )


# ---------------------------------------------------------------- the tables


def _count(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:,.0f}"


def _secs(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:,.1f}"


def _ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def family_report(family: str, runs: Sequence[Run], settings: Mapping[str, Any]) -> str:
    """The markdown table of one family and its target line."""
    by_arm: dict[str, list[Run]] = {}
    for run in runs:
        by_arm.setdefault(run.arm, []).append(run)
    target = family_target(runs)
    summaries = {arm: ArmSummary.of(rs, target) for arm, rs in by_arm.items()}
    plain = best_plain(summaries)
    base = summaries[plain].median_steps if plain else math.nan
    info = settings["families"][family]
    lr_max = OPTIMIZERS[settings["optimizer"]][1]
    name = OPTIMIZER_NAMES[settings["optimizer"]]
    seeds = max(len(rs) for rs in by_arm.values())
    lines = [
        f"### {family}: batch {info['batch_size']} ({info['steps_per_epoch']} steps per epoch), "
        f"{name}, lr_max log-uniform [{lr_max[0]:g}, {lr_max[1]:g}], {seeds} seeds x "
        f"{settings['trials']} trials x {settings['epochs']} epochs; target {target:.4f} "
        f"(best of all arms {target + TARGET_MARGIN:.4f} - {TARGET_MARGIN})",
        "",
        "| arm | seeds reaching | median steps to target | worst steps | median wall s "
        "| worst wall s | mean final best | steps in unstable trials (before the target) "
        "| stopped: memory / rules / non-finite / base | median / best plain Optuna |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, s in summaries.items():
        stops = " / ".join(f"{s.stops[c]:.1f}" for c in ("memory", "rules", "non-finite", "base"))
        lines.append(
            f"| {arm}{' (best plain)' if arm == plain else ''} | {s.reached}/{s.seeds} "
            f"| {_count(s.median_steps)} | {_count(s.worst_steps)} | {_secs(s.median_seconds)} "
            f"| {_secs(s.worst_seconds)} | {s.mean_best:.4f} "
            f"| {s.unstable_steps:,.0f} ({s.unstable_before:,.0f}) | {stops} "
            f"| {_ratio(ratio(s.median_steps, base))} |"
        )
    lines.append("")
    if plain and DEFAULTS in summaries:
        defaults = summaries[DEFAULTS]
        top = max((n for n in PLAIN_OPTUNA if n in summaries), key=lambda n: summaries[n].mean_best)
        diff = 100 * (defaults.mean_best - summaries[top].mean_best)
        lines.append(
            f"{family}: defaults / best plain Optuna ({plain}) = "
            f"{_ratio(ratio(defaults.median_steps, base))} (target <= {RATIO_TARGET}); final best "
            f"difference {diff:+.2f} points vs {top} (target >= {BEST_TARGET})"
        )
    return "\n".join(lines)


def report(runs: Sequence[Run], settings: Mapping[str, Any]) -> str:
    families = list(dict.fromkeys(run.family for run in runs))
    return "\n\n".join(
        family_report(f, [r for r in runs if r.family == f], settings) for f in families
    )


# ---------------------------------------------------------------- saved runs


def save(path: Path, runs: Sequence[Run], settings: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": _FORMAT, "settings": settings, "runs": [asdict(run) for run in runs]}
    path.write_text(json.dumps(data, indent=1, allow_nan=True))


def load(paths: Sequence[Path]) -> tuple[list[Run], dict[str, Any]]:
    """The runs of several saved files (a later file's run of the same family, arm and seed
    replaces an earlier one) and their common settings."""
    runs: dict[tuple[str, str, int], Run] = {}
    settings: dict[str, Any] | None = None
    for path in paths:
        data = json.loads(path.read_text())
        if data.get("format") != _FORMAT:
            raise SystemExit(f"--report: {path} is not a file of this script (format {_FORMAT}).")
        these = data["settings"]
        if settings is None:
            settings = these
        else:
            for key in ("optimizer", "trials", "epochs"):
                if these[key] != settings[key]:
                    raise SystemExit(
                        f"--report: {path} has {key} = {these[key]!r}, the first file "
                        f"{settings[key]!r}; only runs of the same settings compare."
                    )
            settings["families"].update(these["families"])
        for raw in data["runs"]:
            trials = tuple(TrialRecord(**t) for t in raw.pop("trials"))
            run = Run(**raw, trials=trials)
            runs[(run.family, run.arm, run.seed)] = run
    assert settings is not None
    return list(runs.values()), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        action="append",
        choices=list(FAMILIES),
        help="task family (batch size in FAMILIES); repeat for several (default: all)",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms (default all)"
    )
    parser.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default="momentum",
        help="momentum: SGD momentum 0.9, lr_max in [1e-4, 1] (default); sgd: in [1e-3, 10]",
    )
    parser.add_argument("--json", type=Path, help="save the runs here (for --report)")
    parser.add_argument(
        "--report", type=Path, nargs="+", help="print the tables of saved runs; trains nothing"
    )
    args = parser.parse_args()
    if args.report:
        runs, settings = load(args.report)
        print(report(runs, settings))
        return
    families = list(dict.fromkeys(args.family or FAMILIES))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = {
        "optimizer": args.optimizer,
        "trials": args.trials,
        "epochs": args.epochs,
        "families": {
            f: {"batch_size": FAMILIES[f], "steps_per_epoch": steps_per_epoch(f)} for f in families
        },
    }
    start = time.perf_counter()
    runs = run_all(args, families)
    if args.json:
        save(args.json, runs, settings)
    print(report(runs, settings))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
