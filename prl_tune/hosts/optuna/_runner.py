"""The Optuna host's runner: a study on any RDB storage, run by one or several worker processes."""

from __future__ import annotations

import sys
from typing import IO

import optuna

from prl_tune._checks import integer
from prl_tune.config import StudySpec, steps_per_trial
from prl_tune.hosts._shared import resolve_space, warm_start, with_overrides
from prl_tune.hosts.optuna._supervisor import Supervisor
from prl_tune.hosts.optuna._worker import WorkerSetup, work
from prl_tune.report import Progress, format_summary
from prl_tune.store import (
    STEP_BUDGET_ATTR,
    BudgetLock,
    StepBudget,
    check_storage_url,
    create_or_resume,
    heartbeat_grace_s,
)
from prl_tune.training import cpu_threads


def run_study(
    spec: StudySpec,
    *,
    n_trials: int | None = None,
    max_steps: int | None = None,
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

    With ``max_steps``, the study also ends once its trials have run that many optimizer steps
    (each trial's ``steps``, pruned and stopped ones included; a trial whose process died is run
    again and its steps do not count), whichever of the two budgets is used first. A new trial
    starts only while the finished trials' steps plus, for each running trial, the most one
    trial can run (``[task] epochs`` x batches per epoch; the task is built once to count them)
    are below ``max_steps``, decided under the same lock as the trial budget
    (:class:`~prl_tune.store.StepBudget`): the last trial crosses the budget and finishes, so
    the study ends with its steps in ``[max_steps, max_steps + one trial's steps)`` however many
    workers and machines run it. Like ``n_trials`` it is the study's total, recorded on the
    study (:data:`~prl_tune.store.STEP_BUDGET_ATTR`, for reports): a re-run with a larger one
    continues the study.

    Args:
        spec: the parsed study.
        n_trials: override of ``[study] n_trials``.
        max_steps: a budget in optimizer steps, ``>= 1`` (default ``None``: trials only).
        workers: override of ``[study] workers``; that many processes share the storage.
        storage: override of ``[study] storage`` (any SQLAlchemy URL).
        stream: where progress and the summary go (``None``: silent).

    Raises:
        WorkersFailed: worker processes died more often than ``[study] worker_restarts``
            allows and the study is short of its budget.
    """
    integer("max_steps", max_steps, minimum=1, optional=True)
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
    with cpu_threads(spec.threads):  # a range test here runs as the trials do
        spec = resolve_space(study, spec, stream)
        if spec.warm_start != "none":
            lock = BudgetLock(spec.storage, spec.name)
            try:
                with lock:  # one command enqueues the first trials
                    spec = warm_start(study, spec, stream)
            finally:
                lock.close()
    steps = None
    if max_steps is not None:
        steps = StepBudget(max_steps, steps_per_trial(spec))
        study.set_user_attr(STEP_BUDGET_ATTR, max_steps)
    progress = Progress(
        spec.n_trials,
        study.direction,
        stream=stream,
        workers=spec.workers,
        max_steps=max_steps,
    )
    progress.start(study)
    if spec.workers == 1:
        with cpu_threads(spec.threads):
            work(spec, WorkerSetup(), progress, steps)
    else:
        Supervisor(spec, progress, stream, steps).run()
    if stream is not None:
        print(format_summary(study), file=stream)
    return study
