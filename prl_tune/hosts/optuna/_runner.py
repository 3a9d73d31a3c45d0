"""The Optuna host's runner: a study on any RDB storage, run by one or several worker processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import IO, Any

import optuna
from optuna.trial import TrialState

from prl_tune.config import StudySpec
from prl_tune.hosts.optuna._objective import optuna_objective
from prl_tune.hosts.optuna._pruner import make_pruner
from prl_tune.report import Progress, format_summary
from prl_tune.space import PendingRangeTest
from prl_tune.store import (
    HEARTBEAT_INTERVAL_S,
    counted_trials,
    create_or_resume,
    open_storage,
    resolve_lr_max,
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

    ``n_trials`` is the study's total budget, so re-running the same command resumes an
    interrupted study and runs only the missing trials; failed trials of a crashed process are
    re-run, trials whose own code raised count (their error is on the trial). An existing study
    with the same name but another configuration is refused with a ``SpecError``.

    Args:
        spec: the parsed study.
        n_trials: override of ``[study] n_trials``.
        workers: override of ``[study] workers``; that many processes share the storage.
        storage: override of ``[study] storage`` (any SQLAlchemy URL).
        stream: where progress and the summary go (``None``: silent).
    """
    overrides = {"n_trials": n_trials, "workers": workers, "storage": storage}
    changes = {key: value for key, value in overrides.items() if value is not None}
    if changes:
        spec = spec.with_study(**changes)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # prl-tune prints its own progress
    study = create_or_resume(spec)
    pending = isinstance(spec.space, PendingRangeTest)
    spec = resolve_lr_max(study, spec, on_run=lambda: _say(stream, _RANGE_TEST_RUNS, spec))
    if pending and stream is not None:
        low, high = spec.space.plrs.lr_max  # type: ignore[union-attr]
        print(f"lr_max range from the LR range test: [{low:.4g}, {high:.4g}]", file=stream)
    progress = Progress(spec.n_trials, study.direction, stream=stream, workers=spec.workers)
    progress.start(study)
    if spec.workers == 1:
        _work(spec, 0, None, progress)
    else:
        _run_processes(spec, progress)
    if stream is not None:
        print(format_summary(study), file=stream)
    return study


_RANGE_TEST_RUNS = "running the LR range test on {task!r} (once per study) ..."


def _say(stream: IO[str] | None, message: str, spec: StudySpec) -> None:
    if stream is not None:
        print(message.format(task=spec.task.name), file=stream, flush=True)


def make_sampler(spec: StudySpec, worker: int) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded per worker so parallel workers do not propose the same point."""
    seed = spec.seed + 1000 * worker
    if spec.study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, spec.n_trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group=True
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=startup,
            multivariate=True,
            group=len(spec.schedulers) > 1,
            constant_liar=spec.workers > 1,
        )


def _work(spec: StudySpec, worker: int, lock: Any, progress: Progress | None) -> None:
    """One worker: ask for trials under the lock until the budget is used, run, tell."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec.storage)
    study = optuna.load_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec, worker),
        pruner=make_pruner(spec),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    study_id = storage.get_study_id_from_name(spec.name)
    while True:
        with lock if lock is not None else nullcontext():
            used = counted_trials(study)
            if used >= spec.n_trials:
                return
            schedulers = spec.schedulers
            if len(schedulers) > 1 and spec.allocation == "equal":
                # Equal budgets: the scheduler goes round-robin, the sampler picks its parameters.
                study.enqueue_trial({"scheduler": schedulers[used % len(schedulers)]})
            with warnings.catch_warnings():
                # Optuna's heartbeats are meant for Study.optimize; ask/tell has no public hook,
                # so this loop beats itself (_heartbeat) and stale trials are failed all the same.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        with _heartbeat(storage, trial_id, trial.number):
            state, value = _run_trial(spec, trial)
        study.tell(trial, value, state=state)
        if progress is not None:
            progress.update(study)


def _run_trial(spec: StudySpec, trial: optuna.Trial) -> tuple[TrialState, float | None]:
    try:
        value = optuna_objective(spec, trial)
    except optuna.TrialPruned:
        return TrialState.PRUNED, None
    except Exception as exc:  # the user's task or model raised: record it, go on
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        trial.set_user_attr("traceback", traceback.format_exc(limit=8)[-4000:])
        return TrialState.FAIL, None
    if value != value:  # NaN objective: nothing the sampler can rank
        trial.set_user_attr("error", "objective value is NaN")
        return TrialState.FAIL, None
    return TrialState.COMPLETE, value


@contextmanager
def _heartbeat(storage: optuna.storages.RDBStorage, trial_id: int, number: int) -> Iterator[None]:
    """Beat for a running trial every ``HEARTBEAT_INTERVAL_S`` until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            storage.record_heartbeat(trial_id)
            stop.wait(HEARTBEAT_INTERVAL_S)

    thread = threading.Thread(target=beat, name=f"heartbeat-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _worker_main(spec_dict: dict[str, Any], source: str, worker: int, lock: Any) -> None:
    import torch

    spec = StudySpec.from_dict(spec_dict, source=source)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.workers))
    _work(spec, worker, lock, None)


def _run_processes(spec: StudySpec, progress: Progress) -> None:
    context = multiprocessing.get_context("spawn")
    lock = context.Lock()
    processes = [
        context.Process(
            target=_worker_main,
            args=(spec.to_dict(), spec.source, worker, lock),
            name=f"prl-tune-worker-{worker}",
        )
        for worker in range(spec.workers)
    ]
    for process in processes:
        process.start()
    study = optuna.load_study(study_name=spec.name, storage=open_storage(spec.storage))
    try:
        while any(p.is_alive() for p in processes):
            progress.update(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    progress.update(study)
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker processes {failed} exited with an error (see their output).")
