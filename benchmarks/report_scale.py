"""Report of a large study: the time to load it and to render it, and the size of the output.

A study that looks like what prl_tune's Optuna host writes is generated with Optuna's public API
alone into a temporary SQLite file: the PLRS space (``lr_max`` log-uniform, ``lr_min_ratio``),
optionally a categorical ``scheduler`` with the baselines' peak ``lr``, every epoch's metrics in
``history`` and as intermediate values, and outcomes drawn from ``lr_max``: low ones complete,
high ones are pruned as unstable by the divergence rules (exploded or non-finite, with their
loss and LR tails) or by the memory, some are pruned by the base pruner and a few fail. Then,
timed separately: ``optuna.load_study`` with the first read of every trial, and
``prl_tune.report.write_report`` as HTML, as Markdown (a folder) and as text. It prints the
generation time, a table of seconds and sizes per form, and whether the HTML report (load
included) meets its target.

    python benchmarks/report_scale.py [--trials N] [--epochs N] [--schedulers S ...] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import prl_tune
from prl_tune.config import StudySpec
from prl_tune.schedulers import SCHEDULER_NAMES
from prl_tune.store import CONSTRAINT_KEY, SPEC_ATTR, VERSION_ATTR, json_float

STUDY_NAME = "report-scale"
STORE_NAME = "report_scale.sqlite3"
LR_RANGE = (1e-3, 10.0)
#: digits CNN at batch 16 (the spec below): 1437 training samples, 90 optimizer steps per epoch.
STEPS_PER_EPOCH = 90
#: The training loop's stability check interval and tail length (``StabilityRules.check_every``,
#: ``prl_tune.training._loop._TAIL_LENGTH``).
CHECK_EVERY = 8
TAIL_LENGTH = 32
EXPLODE_FACTOR = 10.0
CHANCE_LOSS = math.log(10)
BATCH = 200
_ERRORS = (
    "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed.",
    "ValueError: Expected input batch_size (16) to match target batch_size (12).",
    "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
    "memory: you tried to allocate 1207959552 bytes.",
)
_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "prl_tune/hosts/optuna/_runner.py", line 125, in _run_trial\n'
    "    value = optuna_objective(spec, trial)\n"
    '  File "prl_tune/hosts/optuna/_objective.py", line 85, in optuna_objective\n'
    "    result = train_trial(spec, config, on_epoch=_Reporter(spec, trial), "
    "on_check=losses.observe)\n"
    '  File "prl_tune/config/_trial.py", line 80, in train_trial\n'
    "    return train(\n"
    '  File "prl_tune/training/_loop.py", line 420, in train\n'
    "    outputs = model(inputs)\n"
    "{error}\n"
)


def spec_dict(
    url: str, n_trials: int, epochs: int, schedulers: Sequence[str], seed: int = 0
) -> dict[str, Any]:
    """The canonical spec of the generated study, as prl_tune stores it."""
    return StudySpec.from_dict(
        {
            "study": {"name": STUDY_NAME, "storage": url, "n_trials": n_trials, "seed": seed},
            "task": {
                "name": "digits",
                "epochs": epochs,
                "device": "cpu",
                "params": {"model": "cnn", "batch_size": 16},
            },
            "optimizer": {"name": "sgd"},
            "space": {
                "schedulers": list(schedulers),
                "lr_max": list(LR_RANGE),
                "lr_min_ratio": [0.0, 1.0],
                "lr": list(LR_RANGE),
            },
            "pruning": {"base": "median"},
        }
    ).to_dict()


class _Generator:
    """Draws one trial at a time, as a prl_tune study would have stored it."""

    def __init__(self, schedulers: Sequence[str], epochs: int, seed: int) -> None:
        self.schedulers = tuple(schedulers)
        self.epochs = epochs
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.clock = datetime(2025, 6, 2, 9, 0, 0)
        # Unstable ranges seen so far per scheduler: (lr_min, lr_max, trial number).
        self.unstable: dict[str, list[tuple[float, float, int]]] = {}
        #: Trials per outcome: ``"COMPLETE"``, ``"FAIL"``, ``"PRUNED by <pruned_by>"``.
        self.mix: Counter[str] = Counter()
        many = len(self.schedulers) > 1
        self.log_float = FloatDistribution(*LR_RANGE, log=True)
        self.ratio = FloatDistribution(0.0, 1.0)
        self.choice = CategoricalDistribution(self.schedulers) if many else None

    def _name(self, name: str) -> str:
        return name if self.choice is None else f"plrs_{name}"

    def _draw_lr(self, number: int) -> float:
        """Log-uniform while the sampler explores, then mostly around the good region (TPE)."""
        low, high = (math.log(v) for v in LR_RANGE)
        if number < 20 or self.rng.random() < 0.35:
            value = self.rng.uniform(low, high)
        else:
            value = self.rng.normal(math.log(0.15), 1.3)
        return min(max(float(math.exp(value)), LR_RANGE[0]), LR_RANGE[1])  # exp(log(x)) != x

    def trial(self, number: int) -> FrozenTrial:
        rng = self.rng
        scheduler = self.schedulers[number % len(self.schedulers)]
        params: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}
        system: dict[str, Any] = {}
        if self.choice is not None:
            params["scheduler"] = scheduler
            dists["scheduler"] = self.choice
            system["fixed_params"] = {"scheduler": scheduler}  # equal allocation enqueues it
        attrs: dict[str, Any] = {"scheduler": scheduler}
        peak = self._draw_lr(number)
        if scheduler == "plrs":
            ratio = float(rng.uniform(0.0, 1.0))
            params[self._name("lr_max")] = peak
            params[self._name("lr_min_ratio")] = ratio
            dists[self._name("lr_max")] = self.log_float
            dists[self._name("lr_min_ratio")] = self.ratio
            lr_min = ratio * peak
            attrs.update(lr_min=lr_min, lr_max=peak, lr_center=(lr_min + peak) / 2)
        else:
            params[f"{scheduler}_lr"] = peak
            dists[f"{scheduler}_lr"] = self.log_float
            lr_min = peak
            attrs["lr"] = peak
        attrs.update(seed=self.seed, backend="optuna")

        # Outcome: unstable above ~1, a few failures, the base pruner on the weaker runs.
        p_unstable = 1.0 / (1.0 + math.exp(-15.0 * math.log10(peak / 0.8)))
        outcome = "complete"
        if rng.random() < 0.01:
            outcome = "fail"
        elif rng.random() < p_unstable:
            blocker = self._blocker(scheduler, lr_min, peak)
            outcome = "memory" if blocker is not None and rng.random() < 0.25 else "rules"
        final = 0.985 - 0.016 * math.log10(peak / 0.2) ** 2 + rng.normal(0.0, 0.004)
        final = min(max(final, 0.9), 0.99)
        if outcome == "complete" and number >= 5 and self.epochs > 1:
            p_base = 0.05 + 0.5 * min(max((0.965 - final) / 0.06, 0.0), 1.0)
            if rng.random() < p_base:
                outcome = "base"

        constraints: dict[str, float] | None = None
        state = TrialState.PRUNED
        value: float | None = None
        history: list[dict[str, Any]] = []
        overhead = float(rng.uniform(0.2, 0.6))
        if outcome == "memory":
            blocker = self._blocker(scheduler, lr_min, peak)
            assert blocker is not None
            b_min, b_max, b_number = blocker
            attrs.update(
                unstable=True,
                pruned_by="memory",
                prune_reason=(
                    f"memory: range at least as aggressive as unstable trial {b_number} "
                    f"(lr_min={b_min:.4g}, lr_max={b_max:.4g})"
                ),
                steps=0,
            )
            constraints = {CONSTRAINT_KEY: 1.0}
            overhead = float(rng.uniform(0.02, 0.08))
        elif outcome == "rules":
            done = 0 if rng.random() < 0.6 else min(1, self.epochs - 1)
            history = self._history(scheduler, lr_min, peak, done, final=0.1, rate=0.3)
            attrs.update(self._divergence(lr_min, peak, done))
            constraints = {CONSTRAINT_KEY: 1.0}
            self.unstable.setdefault(scheduler, []).append((lr_min, peak, number))
        else:
            rate = 0.25 + 0.95 * min(max(math.log10(peak / LR_RANGE[0]) / 2.3, 0.0), 1.0)
            full = self._history(scheduler, lr_min, peak, self.epochs, final=final, rate=rate)
            initial = CHANCE_LOSS + float(rng.normal(0.0, 0.03))
            attrs.update(initial_loss=initial, peak_loss=initial + float(rng.uniform(0, 0.4)))
            if outcome == "complete":
                history = full
                state, value = TrialState.COMPLETE, float(full[-1]["val_accuracy"])
                attrs["steps"] = self.epochs * STEPS_PER_EPOCH
            elif outcome == "base":
                cut = int(rng.integers(1, self.epochs))
                history = full[:cut]
                attrs.update(
                    steps=cut * STEPS_PER_EPOCH,
                    pruned_by="base",
                    prune_reason=f"base pruner at epoch {cut}",
                )
            else:  # fail
                state = TrialState.FAIL
                history = full[: int(rng.integers(0, self.epochs))]
                error = _ERRORS[int(rng.integers(len(_ERRORS)))]
                attrs["error"] = error
                attrs["traceback"] = _TRACEBACK.format(error=error)
                if not history:
                    del attrs["initial_loss"], attrs["peak_loss"]
        if history:
            attrs["history"] = history
        intermediate = {int(h["epoch"]): float(h["val_accuracy"]) for h in history}

        seconds = sum(float(h["seconds"]) for h in history) + overhead
        if outcome == "rules":
            seconds += attrs["diverged_at_step"] % STEPS_PER_EPOCH * 0.012
        trial = optuna.trial.create_trial(
            state=state,
            value=value,
            params=params,
            distributions=dists,
            user_attrs=attrs,
            system_attrs=system,
            intermediate_values=intermediate,
            constraints=constraints,
        )
        trial.datetime_start = self.clock
        self.clock += timedelta(seconds=seconds)
        trial.datetime_complete = self.clock
        self.clock += timedelta(seconds=float(rng.uniform(0.01, 0.05)))
        pruned_by = f" by {attrs['pruned_by']}" if state == TrialState.PRUNED else ""
        self.mix[f"{state.name}{pruned_by}"] += 1
        return trial

    def _blocker(
        self, scheduler: str, lr_min: float, lr_max: float
    ) -> tuple[float, float, int] | None:
        """The first unstable range that this one is at least as aggressive as (dominance)."""
        for record in self.unstable.get(scheduler, ()):
            if lr_min >= record[0] and lr_max >= record[1]:
                return record
        return None

    def _lr_epoch(
        self, scheduler: str, lr_min: float, lr_max: float, epoch: int
    ) -> tuple[float, float, float]:
        """The smallest, mean and largest LR of a 1-based epoch."""
        if scheduler == "plrs":  # uniform draws in [lr_min, lr_max] every step
            span = lr_max - lr_min
            low = lr_min + span * float(self.rng.uniform(0.0, 0.02))
            high = lr_max - span * float(self.rng.uniform(0.0, 0.02))
            return low, lr_min + span * float(self.rng.uniform(0.47, 0.53)), high
        # the baselines: a decay of the peak LR over the run (cosine-like)
        frac = [0.5 * (1 + math.cos(math.pi * (epoch - 1 + t) / self.epochs)) for t in (0, 1)]
        return lr_max * frac[1], lr_max * sum(frac) / 2, lr_max * frac[0]

    def _history(
        self,
        scheduler: str,
        lr_min: float,
        lr_max: float,
        epochs: int,
        *,
        final: float,
        rate: float,
    ) -> list[dict[str, Any]]:
        """Per-epoch metrics as ``EpochMetrics.as_dict`` passed through ``json_float`` (as the
        Optuna host stores them: so ``epoch`` and ``step`` are floats)."""
        rng = self.rng
        history = []
        norm = 1.0 - math.exp(-rate * self.epochs)
        for epoch in range(1, epochs + 1):
            progress = (1.0 - math.exp(-rate * epoch)) / norm
            acc = 0.1 + (final - 0.1) * progress + float(rng.normal(0.0, 0.003))
            acc = min(max(acc, 0.05), 1.0)
            val_loss = -math.log(acc) * float(rng.uniform(1.0, 1.4)) + 0.01
            low, mean, high = self._lr_epoch(scheduler, lr_min, lr_max, epoch)
            metrics = {
                "epoch": epoch,
                "step": epoch * STEPS_PER_EPOCH,
                "train_loss": val_loss * float(rng.uniform(0.75, 1.0)),
                "val_loss": val_loss,
                "val_accuracy": round(acc * 360) / 360,  # 360 validation samples
                "lr_min": low,
                "lr_mean": mean,
                "lr_max": high,
                "seconds": float(rng.uniform(0.9, 1.6)),
            }
            history.append({k: json_float(v) for k, v in metrics.items()})
        return history

    def _divergence(self, lr_min: float, lr_max: float, done: int) -> dict[str, Any]:
        """The attributes of a run stopped by the divergence rules in epoch ``done + 1``."""
        rng = self.rng
        step = done * STEPS_PER_EPOCH + int(rng.integers(1, STEPS_PER_EPOCH + 1))
        checked = min(-(-step // CHECK_EVERY) * CHECK_EVERY, (done + 1) * STEPS_PER_EPOCH)
        initial = CHANCE_LOSS + float(rng.normal(0.0, 0.03))
        reference = max(CHANCE_LOSS, initial)
        n = min(TAIL_LENGTH, step)
        growth = np.geomspace(1.0, float(rng.uniform(20.0, 2000.0)), n)
        losses: list[float] = list(reference * growth * rng.uniform(0.8, 1.2, n))
        lrs = rng.uniform(lr_min, lr_max, n).tolist()
        if rng.random() < 0.2:
            bad = float("nan") if rng.random() < 0.7 else float("inf")
            losses[-1] = bad
            kind, reason, peak = (
                "non-finite",
                f"non-finite training loss ({bad}) at step {step}",
                bad,
            )
        else:
            running = reference * EXPLODE_FACTOR * float(rng.uniform(1.0, 1.5))
            kind = "exploded"
            reason = (
                f"exploded: running loss {running:.4g} above {EXPLODE_FACTOR:g} x the reference "
                f"{reference:.4g} at step {step}"
            )
            peak = running
        return {
            "initial_loss": initial,
            "peak_loss": json_float(peak),
            "steps": checked,
            "unstable": True,
            "pruned_by": "rules",
            "prune_reason": reason,
            "instability": kind,
            "diverged_at_step": step,
            "loss_tail": [json_float(v) for v in losses],
            "lr_tail": [float(v) for v in lrs],
        }


def make_study(
    path: Path,
    n_trials: int = 2000,
    seed: int = 0,
    *,
    epochs: int = 10,
    schedulers: Sequence[str] = ("plrs",),
    mix: Counter[str] | None = None,
) -> str:
    """Write a study of ``n_trials`` finished trials into a new SQLite file; returns its URL.

    ``mix``, if given, is updated with the trials per outcome (state, and who pruned it).
    """
    url = f"sqlite:///{path}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize")
    study.set_user_attr(SPEC_ATTR, spec_dict(url, n_trials, epochs, schedulers, seed))
    study.set_user_attr(VERSION_ATTR, prl_tune.__version__)
    generator = _Generator(schedulers, epochs, seed)
    for start in range(0, n_trials, BATCH):
        study.add_trials([generator.trial(n) for n in range(start, min(start + BATCH, n_trials))])
    storage.engine.dispose()
    if mix is not None:
        mix.update(generator.mix)
    return url


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def measure(url: str, out: Path, n_trials: int) -> None:
    """Load the study and write its reports into ``out``, timing each; print the table."""
    try:
        import prl_tune.report as report

        write_report = report.write_report
    except (ImportError, AttributeError) as exc:
        print(f"prl_tune.report.write_report is not available yet ({type(exc).__name__}: {exc})")
        return
    rows: list[tuple[str, float, str]] = []
    start = time.perf_counter()
    study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    trials = study.get_trials(deepcopy=False)  # load_study is lazy: read every trial once
    load = time.perf_counter() - start
    store = Path(url.removeprefix("sqlite:///"))
    rows.append((f"load ({len(trials)} trials)", load, _mb(_size(store))))
    seconds: dict[str, float] = {}
    sizes: dict[str, int] = {}
    md = out / "report_md"  # the Markdown file and its PNGs, measured together
    md.mkdir(exist_ok=True)
    for form, target, measured in (
        ("html", out / "report.html", out / "report.html"),
        ("md", md / "report.md", md),
        ("text", out / "report.txt", out / "report.txt"),
    ):
        start = time.perf_counter()
        write_report(study, target, format=form)
        seconds[form] = time.perf_counter() - start
        sizes[form] = _size(measured)
        rows.append((form, seconds[form], _mb(sizes[form])))
    print()
    print("| form | seconds | size |")
    print("|---|---|---|")
    for form, secs, size in rows:
        print(f"| {form} | {secs:.2f} | {size} |")
    total = load + seconds["html"]
    mb = sizes["html"] / 1e6
    met = "MET" if total < 10.0 and mb < 10.0 else "MISSED"
    note = "" if n_trials == 2000 else f" [this run: {n_trials:,} trials]"
    print(
        f"target: 2,000-trial HTML report in < 10 s and < 10 MB: {met} "
        f"({total:.1f} s, {mb:.1f} MB; load + html){note}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--schedulers", nargs="+", default=["plrs"], choices=SCHEDULER_NAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="FOLDER",
        help="write the store and reports here and keep them (a matching store is reused)",
    )
    args = parser.parse_args()
    if args.trials < 1 or args.epochs < 1:
        parser.error("--trials and --epochs must be >= 1")
    if len(set(args.schedulers)) != len(args.schedulers):
        parser.error("--schedulers must not repeat a name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="report_scale_") as tmp:
        folder = Path(tmp) if args.keep is None else args.keep
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / STORE_NAME).resolve()
        url = f"sqlite:///{path}"
        if path.exists():  # a store kept by an earlier run: measure it again if it matches
            wanted = spec_dict(url, args.trials, args.epochs, args.schedulers, args.seed)
            found = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
            summary = found.get(STUDY_NAME)
            if (
                summary is None
                or summary.user_attrs.get(SPEC_ATTR) != wanted
                or summary.n_trials != args.trials  # an interrupted generation
            ):
                print(
                    f"{path} holds another or an unfinished study; remove it or choose another "
                    "--keep folder",
                    file=sys.stderr,
                )
                return 2
            print(f"reusing {url} ({_mb(_size(path))})")
        else:
            mix: Counter[str] = Counter()
            start = time.perf_counter()
            make_study(
                path,
                args.trials,
                args.seed,
                epochs=args.epochs,
                schedulers=args.schedulers,
                mix=mix,
            )
            took = time.perf_counter() - start
            print(
                f"generated {args.trials} trials x {args.epochs} epochs "
                f"({', '.join(args.schedulers)}) in {took:.1f} s: {url} ({_mb(_size(path))})"
            )
            print("  " + ", ".join(f"{name} {n}" for name, n in sorted(mix.items())))
        print(f"prl_tune {prl_tune.__version__} from {Path(prl_tune.__file__).parent}")
        measure(url, folder, args.trials)
        if args.keep is not None:
            print(f"kept in {folder}: study {STUDY_NAME!r} in {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
