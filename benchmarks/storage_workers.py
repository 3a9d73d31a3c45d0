"""Worker processes on one SQLite file and on one PostgreSQL server: throughput and lock errors.

Each worker process opens the store as prl_tune's workers do (``prl_tune.store.open_storage``:
SQLite in WAL mode with a long busy timeout; PostgreSQL with pre-pinged connections) and runs
tiny trials as fast as it can: ``ask``, an owner attribute, a heartbeat, ``report`` a few times,
``tell``. There is no training, so writes collide far more often than in a real study. Both
stores are measured in the same run, on the same machine:

* ``sqlite``: one file in a temporary folder;
* ``postgres``: a PostgreSQL 15 server started for the run in a temporary folder (the tests'
  ``tests/fixtures/postgres.py``), with ``synchronous_commit=off``: like SQLite's
  ``synchronous=NORMAL``, a commit is not flushed to disk before it returns, and an OS crash
  loses at most the last commits, never consistency.

It prints, per store, the trials finished (expected: workers x trials), the lock errors
("database is locked", deadlocks, serialization failures; target 0), other errors, whether the
study holds exactly the finished trials with distinct numbers, trials per second, and the ratio
of PostgreSQL's rate to SQLite's.

    python benchmarks/storage_workers.py [--workers 4] [--trials 100] [--reports 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: Words of a lock error: SQLite's busy lock, PostgreSQL's deadlock, serialization and lock
#: timeouts.
LOCK_WORDS = ("locked", "deadlock", "could not serialize", "lock timeout", "could not obtain lock")


@dataclass(frozen=True)
class LoadResult:
    """What one store did under the load."""

    finished: int  # trials the workers told COMPLETE
    lock_errors: int
    other_errors: int
    elapsed_s: float  # from the moment all workers were ready to the last one's end
    stored: Counter[str]  # trials in the study, by state
    distinct_numbers: bool  # the stored trials' numbers are 0..n-1, each once

    @property
    def rate(self) -> float:
        return self.finished / self.elapsed_s


def _worker(url: str, trials: int, reports: int, go: Any, queue: Any) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")  # Optuna's notes on heartbeats with ask/tell
    from prl_tune.store import open_storage

    storage = open_storage(url)
    study = optuna.load_study(study_name="bench", storage=storage)
    study_id = storage.get_study_id_from_name("bench")
    queue.put("ready")
    go.wait()
    done = locked = other = 0
    for _ in range(trials):
        try:
            trial = study.ask()
            trial.set_user_attr("owner", f"{os.getpid()}")
            storage.record_heartbeat(
                storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            )
            for step in range(reports):
                trial.report(float(step), step)
            study.tell(trial, 1.0)
            done += 1
        except Exception as exc:
            if any(word in str(exc).lower() for word in LOCK_WORDS):
                locked += 1
            else:
                other += 1
    queue.put((done, locked, other))


def run_load(url: str, *, workers: int = 4, trials: int = 100, reports: int = 5) -> LoadResult:
    """``workers`` processes run ``trials`` trials each on the study ``bench``, created new
    in the (empty) store at ``url``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from prl_tune.store import open_storage

    storage = open_storage(url)
    optuna.create_study(study_name="bench", storage=storage)
    storage.engine.dispose()  # no connection crosses the fork
    # fork: the workers start with the modules imported; spawn where there is no fork.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    go = context.Event()
    queue = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, trials, reports, go, queue))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            if queue.get(timeout=300) != "ready":
                raise RuntimeError("a worker did not start")
        start = time.perf_counter()
        go.set()
        results = [queue.get(timeout=600) for _ in processes]
        elapsed = time.perf_counter() - start
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    stored = optuna.load_study(study_name="bench", storage=url).get_trials(deepcopy=False)
    storage.engine.dispose()
    numbers = sorted(t.number for t in stored)
    return LoadResult(
        finished=sum(r[0] for r in results),
        lock_errors=sum(r[1] for r in results),
        other_errors=sum(r[2] for r in results),
        elapsed_s=elapsed,
        stored=Counter(t.state.name for t in stored),
        distinct_numbers=numbers == list(range(len(stored))),
    )


def main() -> None:
    from fixtures.postgres import LIKE_SQLITE_NORMAL, missing_reason, running_postgres

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=100, help="trials per worker")
    parser.add_argument("--reports", type=int, default=5, help="trial.report calls per trial")
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        sys.exit(f"cannot start PostgreSQL: {reason}")
    load = {"workers": args.workers, "trials": args.trials, "reports": args.reports}
    results: dict[str, LoadResult] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = run_load(f"sqlite:///{Path(folder) / 'bench.db'}", **load)
    with running_postgres(LIKE_SQLITE_NORMAL) as server:
        results["postgres"] = run_load(server.create_database("bench"), **load)
    expected = args.workers * args.trials
    print(
        f"{args.workers} workers x {args.trials} trials ({args.reports} reports each), "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'store':<9} {'finished':>8} {'locked':>6} {'other':>5} {'exact':>5} {'trials/s':>9}")
    for name, result in results.items():
        exact = (
            result.finished == expected
            and result.stored == {TrialState.COMPLETE.name: expected}
            and result.distinct_numbers
        )
        print(
            f"{name:<9} {result.finished:>8} {result.lock_errors:>6} {result.other_errors:>5} "
            f"{'yes' if exact else 'NO':>5} {result.rate:>9.1f}"
        )
    print(f"postgres / sqlite: {results['postgres'].rate / results['sqlite'].rate:.2f}")


if __name__ == "__main__":
    main()
