"""Throughput of one short study on prl_tune's two backends, against plain loops and libraries.

The same study (built-in ``digits`` task, ``[pruning] rules = true``, ``base = "none"``, a
random sampler, ``lr_max`` in a range where no run diverges, so every row does the same amount
of training) is run by each of these rows, all in one run, every trial with one torch thread:

* ``bare``: ``prl_tune.config.train_trial`` called N times in a row in this process, on configs
  drawn in advance from the study's space (no Optuna, no Ray);
* ``optuna1``, ``optuna2``: ``prl_tune.hosts.optuna.run_study(spec, workers=W)`` on a fresh
  SQLite file (1 worker runs in this process; W > 1 starts W worker processes);
* ``plain-optuna``: two processes started the platform's default way (``fork`` on Linux before
  Python 3.14), each ``optuna.load_study(...).optimize(objective,
  n_trials=N/2)`` on one SQLite file (Optuna's plain ``RDBStorage``); the objective calls
  ``train_trial`` and ``trial.report``s every epoch;
* ``ray1``, ``ray2``: ``prl_tune.hosts.ray.run_study_ray`` with ``[ray] max_concurrent = C,
  cpus_per_trial = 1``, on a Ray started once (``ray.init(num_cpus=2)``) before the Ray rows,
  so Ray's start-up is not in their time (``run_study_ray`` joins a running Ray and leaves it
  running);
* ``plain-ray``: ``ray.tune.Tuner`` over the ``bare`` row's configs (``tune.grid_search`` over
  their indices, no searcher), a function trainable that calls ``train_trial`` and
  ``tune.report``s every epoch (no checkpoints), ``reuse_actors=True``,
  ``max_concurrent_trials=2``, 1 CPU per trial, on the same running Ray;
* ``plain-ray-ckpt``: the same, reporting a checkpoint of the run state every epoch as the Ray
  backend does (``torch.save`` of ``train``'s ``on_state`` dict), so the two do the same work;
* ``ray2-own``: ``ray2`` again after that Ray is shut down, so ``run_study_ray`` starts and
  stops a local Ray itself and its time includes Ray's start-up.

Every row's time runs from the call (or the first process start) to the last trial's end, so it
includes process start-up, imports and the task's data loading in each new process; this process
loads the data once before the first row. prl_tune's Optuna worker processes set their torch
threads to ``os.cpu_count() // workers``, which is 1 per worker only on a 2-core machine (the
script warns otherwise).

It prints a Markdown table (wall seconds, trials per minute, and the speed-up over the ``bare``
row of the same run), then whether two targets are met: the Optuna backend with 2 workers at
least 1.8x the bare loop, and the Ray backend with 2 concurrent trials no slower than plain Ray
Tune with actor reuse (``ray2`` against ``plain-ray``).

    python benchmarks/parallel_scaling.py [--trials 8] [--epochs 16] [--model cnn]
        [--rows bare optuna1 optuna2 plain-optuna ray1 ray2 plain-ray plain-ray-ckpt ray2-own]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from prl_tune.config import StudySpec, objective_value, train_trial

ROWS = {
    "bare": "bare loop, 1 process",
    "optuna1": "prl_tune optuna backend, 1 worker",
    "optuna2": "prl_tune optuna backend, 2 workers",
    "plain-optuna": "plain optuna, 2 processes",
    "ray1": "prl_tune ray backend, 1 concurrent",
    "ray2": "prl_tune ray backend, 2 concurrent",
    "plain-ray": "plain ray tune, actor reuse, 2 concurrent",
    "plain-ray-ckpt": "plain ray tune, actor reuse, 2 concurrent, checkpoint every epoch",
    "ray2-own": "prl_tune ray backend, 2 concurrent, own Ray start",
}
_SHARED_RAY_ROWS = ("ray1", "ray2", "plain-ray", "plain-ray-ckpt")
_STUDY = "bench"
_SEED = 0
_LR_MAX = [0.05, 0.3]  # well below the blow-up LR of the digits runs (benchmarks/README.md)
_RAY_CPUS = 2


@dataclass(frozen=True)
class Measurement:
    """One row: trials finished, wall seconds, and trials stopped early by the rules."""

    trials: int
    seconds: float
    stopped: int = 0

    @property
    def per_minute(self) -> float:
        return 60.0 * self.trials / self.seconds


def build_spec(trials: int, epochs: int, model: str, storage: str) -> StudySpec:
    return StudySpec.from_dict(
        {
            "study": {
                "name": _STUDY,
                "n_trials": trials,
                "storage": storage,
                "sampler": "random",
                "seed": _SEED,
            },
            "task": {
                "name": "digits",
                "epochs": epochs,
                "device": "cpu",
                "params": {"model": model},
            },
            "space": {"lr_max": _LR_MAX},
            "pruning": {"rules": True, "base": "none"},
        }
    )


def fixed_configs(spec: StudySpec, trials: int) -> list[dict[str, Any]]:
    """``trials`` decoded configs drawn once from the study's space (a seeded random sampler)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=_SEED))
    return [spec.space.suggest(study.ask()) for _ in range(trials)]  # type: ignore[union-attr]


def _from_study(study: optuna.Study, seconds: float) -> Measurement:
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    stopped = sum(t.state == TrialState.PRUNED for t in trials)
    return Measurement(len(finished), seconds, stopped)


# --- bare loop ---------------------------------------------------------------------------------


def bare_loop(spec: StudySpec, configs: list[dict[str, Any]]) -> Measurement:
    start = time.perf_counter()
    results = [train_trial(spec, config) for config in configs]
    seconds = time.perf_counter() - start
    return Measurement(len(results), seconds, sum(r.diverged for r in results))


# --- Optuna --------------------------------------------------------------------------------------


def optuna_backend(spec: StudySpec, workers: int, folder: Path) -> Measurement:
    from prl_tune.hosts.optuna import run_study

    url = f"sqlite:///{folder / f'optuna-{workers}.db'}"
    start = time.perf_counter()
    study = run_study(spec, workers=workers, storage=url, stream=None)
    return _from_study(study, time.perf_counter() - start)


def _plain_optuna_worker(spec_data: Mapping[str, Any], url: str, trials: int, seed: int) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = StudySpec.from_dict(spec_data)
    study = optuna.load_study(
        study_name=_STUDY, storage=url, sampler=optuna.samplers.RandomSampler(seed=seed)
    )

    def objective(trial: optuna.Trial) -> float:
        config = spec.space.suggest(trial)  # type: ignore[union-attr]
        result = train_trial(
            spec, config, on_epoch=lambda m: trial.report(getattr(m, spec.metric), m.epoch)
        )
        if result.diverged:
            raise optuna.TrialPruned(result.reason)
        return objective_value(spec, result)

    study.optimize(objective, n_trials=trials)


def plain_optuna(spec: StudySpec, processes: int, folder: Path) -> Measurement:
    url = f"sqlite:///{folder / 'plain-optuna.db'}"
    study = optuna.create_study(study_name=_STUDY, storage=url, direction=spec.direction)
    shares = [
        spec.n_trials // processes + (i < spec.n_trials % processes) for i in range(processes)
    ]
    context = multiprocessing.get_context()  # the platform's default, as a plain script gets
    workers = [
        context.Process(target=_plain_optuna_worker, args=(spec.to_dict(), url, n, _SEED + i))
        for i, n in enumerate(shares)
        if n > 0
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"plain Optuna worker processes exited with codes {failed}.")
    return _from_study(study, seconds)


# --- Ray ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray's banners, progress tables and warnings off (Python-level output only)."""
    with open(os.devnull, "w") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield


def start_ray() -> None:
    import ray

    # Ray's workers import what this process does (as run_study_ray's own ray.init sets up).
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    with _quiet():
        ray.init(
            num_cpus=_RAY_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, paths))}},
        )
    for name in ("ray", "ray.tune", "ray.air", "ray.train"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def ray_backend(spec: StudySpec, concurrent: int, folder: Path, tag: str) -> Measurement:
    from prl_tune.hosts.ray import run_study_ray

    url = f"sqlite:///{folder / f'{tag}.db'}"
    spec = spec.with_ray(
        max_concurrent=concurrent, cpus_per_trial=1, storage_path=str(folder / f"{tag}-ray")
    )
    start = time.perf_counter()
    study = run_study_ray(spec, storage=url, stream=None)
    return _from_study(study, time.perf_counter() - start)


def _plain_trainable(
    config: dict[str, Any],
    *,
    spec_data: Mapping[str, Any],
    configs: list[dict[str, Any]],
    checkpoint: bool,
) -> None:
    from ray import tune

    def report(metrics: Any, state: dict[str, Any]) -> None:
        if not checkpoint:
            tune.report(metrics.as_dict())
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, Path(folder) / "state.pt")
            tune.report(metrics.as_dict(), checkpoint=tune.Checkpoint.from_directory(folder))

    torch.set_num_threads(1)
    spec = StudySpec.from_dict(spec_data)
    train_trial(spec, configs[config["index"]], on_state=report)


def plain_ray(
    spec: StudySpec,
    configs: list[dict[str, Any]],
    concurrent: int,
    folder: Path,
    checkpoint: bool = False,
) -> Measurement:
    from ray import tune

    run = tune.with_parameters(
        _plain_trainable, spec_data=spec.to_dict(), configs=configs, checkpoint=checkpoint
    )
    trainable = tune.with_resources(run, {"cpu": 1})
    start = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(configs))))},
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=concurrent),
        run_config=tune.RunConfig(
            name="plain",
            storage_path=str(folder / f"plain-ray-{checkpoint}"),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    with _quiet():
        grid = tuner.fit()
    seconds = time.perf_counter() - start
    if grid.errors:
        raise RuntimeError(f"plain Ray Tune trials failed: {grid.errors[0]}")
    stopped = sum((r.metrics or {}).get("epoch") != spec.task.epochs for r in grid)
    return Measurement(len(grid), seconds, stopped)


# --- the run -------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: Mapping[str, Measurement]) -> str:
    bare = results.get("bare")
    lines = ["| row | trials | wall s | trials/min | x bare loop |", "|---|---|---|---|---|"]
    for key, m in results.items():
        speedup = None if bare is None else m.per_minute / bare.per_minute
        lines.append(
            f"| {ROWS[key]} | {m.trials} | {m.seconds:.1f} | {m.per_minute:.1f} | "
            f"{_ratio(speedup)} |"
        )
    return "\n".join(lines)


def targets(results: Mapping[str, Measurement]) -> list[str]:
    def line(text: str, a: str, b: str, threshold: float) -> str:
        if a not in results or b not in results:
            return f"target: {text}: NOT MEASURED (needs rows {a} and {b})"
        ratio = results[a].per_minute / results[b].per_minute
        verdict = "MET" if ratio >= threshold else "MISSED"
        return f"target: {text}: {verdict} ({ratio:.2f})"

    return [
        line("optuna backend, 2 workers >= 1.8x bare loop", "optuna2", "bare", 1.8),
        line(
            "ray backend, 2 concurrent no slower than plain Ray Tune with actor reuse",
            "ray2",
            "plain-ray",
            1.0,
        ),
        line(
            "ray backend, 2 concurrent no slower than plain Ray Tune with actor reuse and the "
            "same per-epoch checkpoints",
            "ray2",
            "plain-ray-ckpt",
            1.0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per row")
    parser.add_argument("--epochs", type=int, default=16, help="epochs per trial")
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument(
        "--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS), help="rows to run"
    )
    args = parser.parse_args()
    rows = [key for key in ROWS if key in args.rows]  # the table's order

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    cpus = os.cpu_count() or 1
    if "optuna2" in rows and cpus // 2 != 1:
        print(
            f"note: {cpus} CPUs: prl_tune's 2 Optuna workers use {cpus // 2} torch threads each, "
            "every other row 1 per trial",
            file=sys.stderr,
        )

    results: dict[str, Measurement] = {}
    with tempfile.TemporaryDirectory(prefix="prl_tune-bench-") as name:
        folder = Path(name)
        spec = build_spec(args.trials, args.epochs, args.model, f"sqlite:///{folder / 'x.db'}")
        configs = fixed_configs(spec, args.trials)
        # Imports, the dataset and torch's first-optimizer set-up, once, before any row.
        warm_up = build_spec(1, 1, args.model, spec.storage)
        train_trial(warm_up, configs[0])
        runners: dict[str, Callable[[], Measurement]] = {
            "bare": lambda: bare_loop(spec, configs),
            "optuna1": lambda: optuna_backend(spec, 1, folder),
            "optuna2": lambda: optuna_backend(spec, 2, folder),
            "plain-optuna": lambda: plain_optuna(spec, 2, folder),
            "ray1": lambda: ray_backend(spec, 1, folder, "ray1"),
            "ray2": lambda: ray_backend(spec, 2, folder, "ray2"),
            "plain-ray": lambda: plain_ray(spec, configs, 2, folder),
            "plain-ray-ckpt": lambda: plain_ray(spec, configs, 2, folder, checkpoint=True),
            "ray2-own": lambda: ray_backend(spec, 2, folder, "ray2-own"),
        }
        try:
            for key in rows:
                if key in _SHARED_RAY_ROWS:
                    import ray

                    if not ray.is_initialized():
                        print(f"starting Ray ({_RAY_CPUS} CPUs) ...", file=sys.stderr, flush=True)
                        start_ray()
                elif key == "ray2-own":
                    stop_ray()
                print(f"running {ROWS[key]} ...", file=sys.stderr, flush=True)
                results[key] = runners[key]()
                m = results[key]
                print(f"  {m.trials} trials in {m.seconds:.1f} s", file=sys.stderr, flush=True)
                if m.stopped:
                    print(
                        f"  warning: {m.stopped} trials stopped early by the rules: the rows "
                        "did not all train the same amount",
                        file=sys.stderr,
                    )
        finally:
            if any(key in _SHARED_RAY_ROWS for key in rows):
                stop_ray()
    print(table(results))
    for line in targets(results):
        print(line)


if __name__ == "__main__":
    main()
