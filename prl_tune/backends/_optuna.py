"""The Optuna backend: a study on any RDB storage, run by one or several worker processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from prl_tune import __version__
from prl_tune.backends._objective import optuna_objective
from prl_tune.backends._range import resolve_lr_max
from prl_tune.config import SpecError, StudySpec, spec_differences
from prl_tune.report import Progress, format_summary
from prl_tune.store import HEARTBEAT_INTERVAL_S, open_storage

SPEC_ATTR = "prl_tune.spec"
VERSION_ATTR = "prl_tune.version"


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
        spec: the validated study.
        n_trials: override of ``[study] n_trials``.
        workers: override of ``[study] workers``; that many processes share the storage.
        storage: override of ``[study] storage`` (any SQLAlchemy URL).
        stream: where progress and the summary go (``None``: silent).
    """
    overrides: dict[str, Any] = {}
    if n_trials is not None:
        overrides["n_trials"] = n_trials
    if workers is not None:
        overrides["workers"] = workers
    if storage is not None:
        overrides["storage"] = storage
    if overrides:
        spec = spec.replace(study={**spec.study, **overrides})

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # prl-tune prints its own progress
    study = create_or_resume(spec)
    lr_max = resolve_lr_max(study, spec)
    if lr_max is not None and stream is not None:
        print(
            f"lr_max range from the LR range test: [{lr_max[0]:.4g}, {lr_max[1]:.4g}]",
            file=stream,
        )
    progress = Progress(spec.n_trials, study.direction, stream=stream, workers=spec.workers)
    progress.start(study)
    if spec.workers == 1:
        _work(spec, 0, None, progress, lr_max)
    else:
        _run_processes(spec, progress, lr_max)
    if stream is not None:
        print(format_summary(study), file=stream)
    return study


def create_or_resume(spec: StudySpec) -> optuna.Study:
    """Create the study in its storage, or load it after checking it has the same configuration."""
    storage = open_storage(spec.storage)
    current = spec.to_dict()
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        direction = StudyDirection[spec.direction.upper()]
        study = optuna.create_study(study_name=spec.name, storage=storage, direction=direction)
        study.set_user_attr(SPEC_ATTR, current)
        study.set_user_attr(VERSION_ATTR, __version__)
        return study
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        raise SpecError(
            f"[study] name: a study {spec.name!r} not made by prl-tune already exists in "
            f"{spec.storage!r}; choose another name."
        )
    diffs = spec_differences(stored, current)
    if diffs:
        raise SpecError(
            f"[study] name: study {spec.name!r} in {spec.storage!r} was created with another "
            f"configuration ({'; '.join(diffs)}); choose another name to start a new study."
        )
    return study


def counted_trials(study: optuna.Study) -> int:
    """Trials that use up the budget: all but those failed by a dead process (no ``error``)."""
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state != TrialState.FAIL or "error" in trial.user_attrs:
            count += 1
    return count


def make_sampler(spec: StudySpec, worker: int) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded per worker so parallel workers do not propose the same point."""
    seed = int(spec.study["seed"]) + 1000 * worker
    if spec.study["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, spec.n_trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group=True
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=startup,
            multivariate=True,
            group=len(spec.space["schedulers"]) > 1,
            constant_liar=spec.workers > 1,
        )


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The ``[pruning]`` section: the instability pruner around the base pruner.

    The divergence rules run inside the training loop on the per-step training loss (cheaper
    and earlier than on per-epoch reports), so the pruner applies only the memory and the base.
    """
    from prl_tune.pruners import InstabilityPruner

    section = spec.pruning
    base: optuna.pruners.BasePruner | None = None
    if section["base"] == "median":
        base = optuna.pruners.MedianPruner(
            n_startup_trials=section["n_startup_trials"], n_warmup_steps=section["n_warmup_steps"]
        )
    elif section["base"] == "hyperband":
        base = optuna.pruners.HyperbandPruner(
            min_resource=section["min_resource"],
            max_resource=int(spec.task["epochs"]),
            reduction_factor=section["reduction_factor"],
        )
    return InstabilityPruner(
        base, rules=spec.stability_rules(), memory=section["memory"], rules_on_reports=False
    )


def _work(
    spec: StudySpec,
    worker: int,
    lock: Any,
    progress: Progress | None,
    lr_max: tuple[float, float] | None,
) -> None:
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
    while True:
        with _locked(lock):
            used = counted_trials(study)
            if used >= spec.n_trials:
                return
            schedulers = spec.space["schedulers"]
            if len(schedulers) > 1 and spec.space["allocation"] == "equal":
                # Equal budgets: the scheduler goes round-robin, the sampler picks its parameters.
                study.enqueue_trial({"scheduler": schedulers[used % len(schedulers)]})
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for Study.optimize; this loop records
                # them itself (``_heartbeat``) so stale trials are failed and re-run all the same.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
        state, value = _run_trial(spec, study, trial, lr_max)
        study.tell(trial, value, state=state)
        if progress is not None:
            progress.update(study)


def _run_trial(
    spec: StudySpec, study: optuna.Study, trial: optuna.Trial, lr_max: tuple[float, float] | None
) -> tuple[TrialState, float | None]:
    with _heartbeat(study, trial):
        try:
            value = optuna_objective(spec, trial, lr_max=lr_max)
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
def _heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    storage = study._storage  # the RDBStorage opened by this worker
    record = getattr(storage, "record_heartbeat", None)
    if record is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            record(trial._trial_id)
            stop.wait(HEARTBEAT_INTERVAL_S)

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _locked(lock: Any) -> Iterator[None]:
    if lock is None:
        yield
        return
    with lock:
        yield


def _worker_main(
    spec_dict: dict[str, Any],
    source: str,
    worker: int,
    lock: Any,
    lr_max: tuple[float, float] | None,
) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(spec_dict["study"]["workers"])))
    _work(StudySpec.from_dict(spec_dict, source=source), worker, lock, None, lr_max)


def _run_processes(spec: StudySpec, progress: Progress, lr_max: tuple[float, float] | None) -> None:
    context = multiprocessing.get_context("spawn")
    lock = context.Lock()
    processes = [
        context.Process(
            target=_worker_main,
            args=(spec.to_dict(), spec.source, worker, lock, lr_max),
            name=f"prl-tune-worker-{worker}",
        )
        for worker in range(spec.workers)
    ]
    for process in processes:
        process.start()
    storage = open_storage(spec.storage)
    study = optuna.load_study(study_name=spec.name, storage=storage)
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
