"""Trials per minute with 1, 2 and 4 trials sharing one GPU, on both of prl_tune's backends.

A small study (built-in ``digits`` CNN, ``[task] device = "cuda"``, a larger batch than the
default, ``[pruning] rules = true``, ``base = "none"``, a random sampler, ``lr_max`` in a range
where no run diverges) is run once per backend and per number of trials k on the card:

* ``optuna``: ``prl_tune.hosts.optuna.run_study(spec, workers=k)``, every worker process on
  ``cuda:0`` (k = 1 runs in this process; k > 1 starts k worker processes, each with
  ``os.cpu_count() // k`` torch threads);
* ``ray``: ``prl_tune.hosts.ray.run_study_ray`` with ``[ray] gpus_per_trial = 1/k,
  cpus_per_trial = 1, max_concurrent = k``, on a Ray started once before the Ray settings (its
  start-up is not in their time).

Each setting uses a fresh SQLite file and its time includes the start-up of its processes (torch
and CUDA initialization in each new worker); this process initializes CUDA and trains one epoch
before the first setting. It prints the device, the torch version and a Markdown table of wall
seconds and trials per minute. Without a CUDA GPU it prints one line and exits with code 0.

    python benchmarks/gpu_fractional.py [--trials 8] [--epochs 40] [--batch-size 256]
        [--per-card 1 2 4] [--backends optuna ray]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from prl_tune.config import StudySpec, train_trial

_STUDY = "bench"
_SEED = 0
_LR_MAX = [0.05, 0.3]  # well below the blow-up LR of the digits runs (benchmarks/README.md)
BACKENDS = ("optuna", "ray")


def build_spec(trials: int, epochs: int, batch_size: int, storage: str, device: str) -> StudySpec:
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
                "device": device,
                "params": {"model": "cnn", "batch_size": batch_size},
            },
            "space": {"lr_max": _LR_MAX},
            "pruning": {"rules": True, "base": "none"},
        }
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray's banners and warnings off (Python-level output only)."""
    with open(os.devnull, "w") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield


def start_ray() -> None:
    """A local Ray with this machine's CPUs and GPUs; its workers import what this process does."""
    import ray

    if ray.is_initialized():
        return
    paths = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    with _quiet():
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, paths))}},
        )
    for name in ("ray", "ray.tune", "ray.air", "ray.train"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run_setting(spec: StudySpec, backend: str, per_card: int, folder: Path) -> tuple[int, float]:
    """One backend with ``per_card`` trials on the card: (trials finished, wall seconds)."""
    url = f"sqlite:///{folder / f'{backend}-{per_card}.db'}"
    start = time.perf_counter()
    if backend == "optuna":
        from prl_tune.hosts.optuna import run_study

        study = run_study(spec, workers=per_card, storage=url, stream=None)
    else:
        from prl_tune.hosts.ray import run_study_ray

        spec = spec.with_ray(
            gpus_per_trial=1.0 / per_card,
            cpus_per_trial=1,
            max_concurrent=per_card,
            storage_path=str(folder / f"ray-{per_card}"),
        )
        study = run_study_ray(spec, storage=url, stream=None)
    seconds = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    stopped = sum(t.state == TrialState.PRUNED for t in trials)
    if stopped:
        print(f"  warning: {stopped} trials stopped early by the rules", file=sys.stderr)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    return finished, seconds


def measure(args: argparse.Namespace, device: str = "cuda") -> list[tuple[str, int, int, float]]:
    """Every setting of ``args``: (backend, trials per card, trials finished, wall seconds)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="prl_tune-gpu-bench-") as name:
        folder = Path(name)
        storage = f"sqlite:///{folder / 'x.db'}"
        spec = build_spec(args.trials, args.epochs, args.batch_size, storage, device)
        # CUDA, the imports and torch's first-optimizer set-up in this process, once.
        warm_up = build_spec(1, 1, args.batch_size, storage, device)
        train_trial(warm_up, {"scheduler": "plrs", "lr_min": 0.05, "lr_max": 0.1})
        try:
            for backend in (b for b in BACKENDS if b in args.backends):
                if backend == "ray":
                    print("starting Ray ...", file=sys.stderr, flush=True)
                    start_ray()
                for per_card in args.per_card:
                    print(
                        f"running {backend}, {per_card} trials per card ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    trials, seconds = run_setting(spec, backend, per_card, folder)
                    print(f"  {trials} trials in {seconds:.1f} s", file=sys.stderr, flush=True)
                    rows.append((backend, per_card, trials, seconds))
        finally:
            if "ray" in sys.modules:
                import ray

                if ray.is_initialized():
                    ray.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per setting")
    parser.add_argument("--epochs", type=int, default=40, help="epochs per trial")
    parser.add_argument("--batch-size", type=int, default=256, help="digits training batch")
    parser.add_argument("--per-card", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU (torch.cuda.is_available() is False): nothing measured")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    rows = measure(args)
    print("| backend | trials per card | trials | wall s | trials/min |")
    print("|---|---|---|---|---|")
    for backend, per_card, trials, seconds in rows:
        print(
            f"| {backend} | {per_card} | {trials} | {seconds:.1f} | {60 * trials / seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
