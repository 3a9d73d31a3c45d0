"""The Optuna host's runner: a study on any RDB storage, run by one or several worker processes."""

from __future__ import annotations

import sys
from typing import IO

import optuna

from prl_tune.config import StudySpec
from prl_tune.hosts._shared import resolve_space, with_overrides
from prl_tune.hosts.optuna._supervisor import Supervisor
from prl_tune.hosts.optuna._worker import WorkerSetup, work
from prl_tune.report import Progress, format_summary
from prl_tune.store import (
    BudgetLock,
    check_storage_url,
    create_or_resume,
    heartbeat_grace_s,
)


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    workers: int | None = None,
    storage: str | None = None,
    stream: IO[str] | None = sys.stderr,
) -> optuna.Study:
    """Run (or resume) the study that ``spec`` describes until it holds ``n_trials`` trials.

    ``n_trials`` is the study's total budget, shared by every command that runs the study on the
    same storage, on any machine (a lock in the database hands it out): re-running the same
    command resumes an interrupted study and runs only the missing trials; trials whose process
    died are re-run, trials whose own code raised count (their error is on the trial). An
    existing study with the same name but another configuration is refused with a
    ``SpecError``. With several workers, a worker process that dies is replaced (see
    :class:`~prl_tune.hosts.optuna.WorkersFailed` for when that ends).

    Args:
        spec: the parsed study.
        n_trials: override of ``[study] n_trials``.
        workers: override of ``[study] workers``; that many processes share the storage.
        storage: override of ``[study] storage`` (any SQLAlchemy URL).
        stream: where progress and the summary go (``None``: silent).

    Raises:
        WorkersFailed: worker processes died more often than ``[study] worker_restarts``
            allows and the study is short of its budget.
    """
    spec = with_overrides(spec, n_trials=n_trials, workers=workers, storage=storage)
    check_storage_url(spec.storage)  # refused before the store is touched
    heartbeat_grace_s()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # prl-tune prints its own progress
    lock = BudgetLock(spec.storage, spec.name)
    try:
        with lock:  # commands started at once on a new store: one creates it, the others load
            study = create_or_resume(spec)
    finally:
        lock.close()
    spec = resolve_space(study, spec, stream)
    progress = Progress(spec.n_trials, study.direction, stream=stream, workers=spec.workers)
    progress.start(study)
    if spec.workers == 1:
        work(spec, WorkerSetup(), progress)
    else:
        Supervisor(spec, progress, stream).run()
    if stream is not None:
        print(format_summary(study), file=stream)
    return study
