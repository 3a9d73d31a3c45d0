"""The Optuna host's runner: a study on any RDB storage, run by one or several worker processes."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import traceback
import warnings
from contextlib import nullcontext
from typing import IO, Any

import optuna
from optuna.trial import TrialState

from prl_tune.config import StudySpec
from prl_tune.hosts._shared import resolve_space, with_overrides
from prl_tune.hosts.optuna._objective import optuna_objective
from prl_tune.hosts.optuna._pruner import make_pruner
from prl_tune.report import Progress, format_summary
from prl_tune.store import (
    Heartbeat,
    claim,
    counted_trials,
    create_or_resume,
    fail_orphans,
    make_sampler,
    open_storage,
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
    spec = with_overrides(spec, n_trials=n_trials, workers=workers, storage=storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # prl-tune prints its own progress
    study = create_or_resume(spec)
    spec = resolve_space(study, spec, stream)
    progress = Progress(spec.n_trials, study.direction, stream=stream, workers=spec.workers)
    progress.start(study)
    if spec.workers == 1:
        _work(spec, 0, None, progress)
    else:
        _run_processes(spec, progress)
    if stream is not None:
        print(format_summary(study), file=stream)
    return study


def _work(spec: StudySpec, worker: int, lock: Any, progress: Progress | None) -> None:
    """One worker: ask for trials under the lock until the budget is used, run, tell."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec.storage)
    study = optuna.load_study(study_name=spec.name, storage=storage, pruner=make_pruner(spec))
    done = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, worker, concurrent=spec.workers > 1, done=done)
    fail_orphans(study)
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
                # so this loop beats itself (Heartbeat) and stale trials are failed all the same.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
                claim(trial)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        with Heartbeat(storage) as beat:
            beat.add(trial_id)
            try:
                state, value = _run_trial(spec, trial)
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted (Ctrl-C) while it ran")
                study.tell(trial, state=TrialState.FAIL)
                raise
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


def _worker_main(spec_dict: dict[str, Any], source: str, worker: int, lock: Any) -> None:
    import torch

    spec = StudySpec.from_dict(spec_dict, source=source)
    torch.set_num_threads(_worker_threads(spec.workers))
    _work(spec, worker, lock, None)


# Imported once by the fork server, so each worker starts without re-importing them (torch's
# optimizers load torch._dynamo on first use).
_PRELOAD = [
    "torch",
    "torch._dynamo",
    "optuna",
    "sklearn.datasets",
    "sklearn.model_selection",
    "prl_tune.hosts.optuna._runner",
]


def _worker_threads(workers: int) -> int:
    """Torch threads per worker process: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


def _worker_context(workers: int) -> Any:
    """How worker processes start, the fastest way that is safe.

    - ``fork`` (Linux) when each worker runs one torch thread and this process has not
      initialized CUDA: the worker inherits the imported modules and loaded data and starts at
      once. A forked child that runs OpenMP with more than one thread after its parent did can
      hang, so not otherwise.
    - else a fork server that has imported the heavy modules once, itself never running torch;
    - ``spawn`` where neither exists (Windows).
    """
    import torch

    methods = multiprocessing.get_all_start_methods()
    single = _worker_threads(workers) == 1 and not torch.cuda.is_initialized()
    if sys.platform == "linux" and single and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _run_processes(spec: StudySpec, progress: Progress) -> None:
    context = _worker_context(spec.workers)
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
        alive = list(processes)
        while alive:
            progress.update(study)
            # Wake up at a worker's exit, or after a second to print progress.
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=1.0)
            alive = [p for p in alive if p.is_alive()]
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        fail_orphans(study)  # the trials the workers were running
        raise
    finally:
        for process in processes:
            process.join()
    progress.update(study)
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker processes {failed} exited with an error (see their output).")
