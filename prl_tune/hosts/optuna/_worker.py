"""One worker of an Optuna study: take a trial under the budget lock, run it, tell, again."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from prl_tune.config import SpecError, StudySpec
from prl_tune.hosts.optuna._objective import optuna_objective
from prl_tune.hosts.optuna._pruner import make_pruner
from prl_tune.report import Progress
from prl_tune.store import (
    BudgetLock,
    Heartbeat,
    LocalBudgetWarning,
    StepBudget,
    claim,
    fail_orphans,
    make_sampler,
    open_storage,
    take_worker_number,
    uses_budget,
    watch_heartbeats,
)

#: Seconds between looks at the study while its budget is used but trials still run elsewhere.
WAIT_FOR_OTHERS_S = 1.0


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker is told by the command that starts it.

    Args:
        index: the worker's place in its command (0 to ``workers - 1``; a replacement takes the
            place of the worker it replaces).
        gpu: its ``CUDA_VISIBLE_DEVICES`` (``None``: left as it is).
        supervisor: the ``process_record`` of the command that watches it (``None``: none).
    """

    index: int = 0
    gpu: str | None = None
    supervisor: dict[str, Any] | None = None


def work(
    spec: StudySpec,
    setup: WorkerSetup,
    progress: Progress | None = None,
    steps: StepBudget | None = None,
) -> None:
    """Run trials until the study holds its budget and none runs, on any machine.

    Before each trial, under the study's :class:`~prl_tune.store.BudgetLock`: fail the trials
    whose process died (:func:`~prl_tune.store.fail_orphans`), count the trials that use the
    budget (and, with ``steps``, the steps they ran or may still run:
    :meth:`~prl_tune.store.StepBudget.allows_another`), enqueue the round-robin scheduler's
    trial (``allocation = "equal"``), ask, record the trial's first heartbeat and claim it.
    While the budget is used but trials still run (here or on another machine), wait: one of
    them may die and need running again, or end with fewer steps than it was counted at.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = _Worker(spec, setup, steps)
    try:
        worker.run(progress)
    finally:
        worker.lock.close()


class _Worker:
    """A worker's study, storage, lock and heartbeats."""

    def __init__(self, spec: StudySpec, setup: WorkerSetup, steps: StepBudget | None) -> None:
        self.spec = spec
        self.setup = setup
        self.steps = steps
        self.storage = watch_heartbeats(open_storage(spec.storage))
        self.study = optuna.load_study(
            study_name=spec.name, storage=self.storage, pruner=make_pruner(spec)
        )
        self.study_id = self.storage.get_study_id_from_name(spec.name)
        with warnings.catch_warnings():  # run_study has said it once
            warnings.simplefilter("ignore", LocalBudgetWarning)
            self.lock = BudgetLock(spec.storage, spec.name)

    def run(self, progress: Progress | None) -> None:
        spec, study = self.spec, self.study
        with self.lock:
            number = take_worker_number(study)  # unique, on every machine and run: the seed
        study.sampler = make_sampler(spec, number, concurrent=spec.workers > 1)
        device = _device_name(spec)
        with Heartbeat(self.storage) as beat:
            while (taken := self._next_trial(beat)) is not None:
                trial, trial_id = taken
                trial.set_user_attr("device", device)
                if self.setup.gpu is not None:
                    trial.set_user_attr("gpu", self.setup.gpu)
                try:
                    state, value = _run_trial(spec, trial)
                except KeyboardInterrupt:
                    trial.set_user_attr("fail_reason", "interrupted (Ctrl-C) while it ran")
                    study.tell(trial, state=TrialState.FAIL)
                    raise
                finally:
                    beat.discard(trial_id)
                study.tell(trial, value, state=state)
                if progress is not None:
                    progress.update(study)

    def _next_trial(self, beat: Heartbeat) -> tuple[optuna.Trial, int] | None:
        """The next trial to run (and its storage id), beating and claimed; ``None`` once the
        budget is used and nothing runs."""
        spec, study = self.spec, self.study
        while True:
            with self.lock:
                fail_orphans(study)
                trials = study.get_trials(deepcopy=False)
                used = sum(uses_budget(t) for t in trials)
                if used < spec.n_trials and (
                    self.steps is None or self.steps.allows_another(trials)
                ):
                    schedulers = spec.schedulers
                    waiting = any(t.state == TrialState.WAITING for t in trials)
                    if len(schedulers) > 1 and spec.allocation == "equal" and not waiting:
                        # Equal budgets: the scheduler goes round-robin, the sampler picks its
                        # parameters. (A trial left WAITING by a worker killed here goes first.)
                        study.enqueue_trial({"scheduler": schedulers[used % len(schedulers)]})
                    with warnings.catch_warnings():
                        # Optuna's heartbeats are meant for Study.optimize; ask/tell has no
                        # public hook, so the worker beats itself (Heartbeat).
                        warnings.filterwarnings("ignore", message="Heartbeat of storage")
                        trial = study.ask()
                    trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                        self.study_id, trial.number
                    )
                    # A beat first, then the owner: wherever this process dies, one of
                    # fail_orphans's rules (no owner and old, stale beat, owner gone) applies.
                    beat.add(trial_id)
                    claim(trial, self.setup.supervisor)
                    return trial, trial_id
                running = any(t.state == TrialState.RUNNING for t in trials)
            if not running:
                return None
            time.sleep(WAIT_FOR_OTHERS_S)


def _device_name(spec: StudySpec) -> str:
    """The torch device this worker's trials run on, for the record."""
    from prl_tune.training import select_device

    try:
        return str(select_device(spec.task.device))
    except ValueError:  # no such device here: each trial fails and says why
        return spec.task.device


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


def worker_main(
    spec_dict: dict[str, Any], source: str, setup: WorkerSetup, steps: StepBudget | None = None
) -> None:
    """A worker process: its GPU, its torch threads, then :func:`work`.

    Ctrl-C is left to the supervisor (SIGINT ignored here): it stops every worker and fails
    their trials. A storage error is one line on stderr and exit code 1.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if setup.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = setup.gpu  # before anything initializes CUDA
    import torch

    spec = StudySpec.from_dict(spec_dict, source=source)
    torch.set_num_threads(spec.threads)
    try:
        work(spec, setup, steps=steps)
    except SpecError as exc:
        print(f"prl-tune: worker {setup.index}: error: {exc}", file=sys.stderr)
        sys.exit(1)
