"""Many worker processes on one SQLite file: lock errors with and without prl_tune's settings.

Each worker process runs tiny Optuna trials (ask, a few ``report`` calls, ``tell``) as fast as it
can against one shared SQLite file, so writes collide far more often than in a real study where
a trial trains for seconds. Two configurations, measured in the same run:

* ``plain``: ``optuna.storages.RDBStorage(url)`` as is (rollback journal, Python's 5 s timeout);
* ``prl_tune``: ``prl_tune.store.open_storage(url)`` (WAL journal, 60 s busy timeout).

It prints, per configuration and worker count, the trials finished, the "database is locked"
errors and the trials per second.

    python benchmarks/sqlite_workers.py [--workers 2 4 8] [--trials 150] [--reports 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from sqlalchemy.exc import OperationalError


def _worker(url: str, mode: str, trials: int, reports: int, queue: multiprocessing.Queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")  # Optuna's notes on heartbeats with ask/tell
    if mode == "prl_tune":
        from prl_tune.store import open_storage

        storage: optuna.storages.BaseStorage = open_storage(url)
    else:
        storage = optuna.storages.RDBStorage(url)
    done = locked = 0
    study = optuna.load_study(study_name="bench", storage=storage)
    for _ in range(trials):
        try:
            trial = study.ask()
            for step in range(reports):
                trial.report(float(step), step)
            study.tell(trial, 1.0)
            done += 1
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            locked += 1
    queue.put((done, locked))


def run(mode: str, workers: int, trials: int, reports: int) -> tuple[int, int, float]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        optuna.create_study(study_name="bench", storage=url)
        context = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue = context.Queue()
        processes = [
            context.Process(target=_worker, args=(url, mode, trials, reports, queue))
            for _ in range(workers)
        ]
        start = time.perf_counter()
        for process in processes:
            process.start()
        results = [queue.get() for _ in processes]
        for process in processes:
            process.join()
        elapsed = time.perf_counter() - start
    return sum(r[0] for r in results), sum(r[1] for r in results), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--trials", type=int, default=150, help="trials per worker")
    parser.add_argument("--reports", type=int, default=5, help="trial.report calls per trial")
    args = parser.parse_args()
    print(f"{'config':<9} {'workers':>7} {'finished':>9} {'locked':>7} {'trials/s':>9}")
    for workers in args.workers:
        rates = {}
        for mode in ("plain", "prl_tune"):
            done, locked, elapsed = run(mode, workers, args.trials, args.reports)
            rates[mode] = done / elapsed
            print(f"{mode:<9} {workers:>7} {done:>9} {locked:>7} {rates[mode]:>9.1f}", flush=True)
        print(
            f"{'ratio':<9} {workers:>7} {'':>9} {'':>7} {rates['prl_tune'] / rates['plain']:>9.2f}"
        )


if __name__ == "__main__":
    main()
