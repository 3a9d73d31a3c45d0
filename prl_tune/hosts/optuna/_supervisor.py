"""The command's watch over its worker processes: a worker that dies is replaced at once.

When a worker dies (a signal such as SIGKILL or the OOM killer's, a segfault in a CUDA kernel,
any nonzero exit), the supervisor fails the trials it claimed (``error`` says how it died,
``fail_reason`` that it is re-run) and starts another worker in its place, with the same GPU,
up to ``[study] worker_restarts`` times (default twice the workers). Ctrl-C stops every worker
and fails their trials, which a re-run of the command runs again.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import sys
from typing import IO, Any

import optuna

from prl_tune.config import StudySpec
from prl_tune.hosts.optuna._gpus import assign_gpus, visible_gpus
from prl_tune.hosts.optuna._worker import WorkerSetup, worker_main
from prl_tune.report import Progress
from prl_tune.store import (
    StepBudget,
    counted_trials,
    fail_trials_of,
    open_storage,
    process_record,
    steps_used,
)

#: Seconds a worker gets to end after SIGTERM (Ctrl-C of the command) before SIGKILL.
STOP_TIMEOUT_S = 10.0

# Imported once by the fork server, so each worker starts without re-importing them (torch's
# optimizers load torch._dynamo on first use).
_PRELOAD = [
    "torch",
    "torch._dynamo",
    "optuna",
    "sklearn.datasets",
    "sklearn.model_selection",
    "prl_tune.hosts.optuna._worker",
]


class WorkersFailed(RuntimeError):
    """Worker processes died more often than the restart limit allows, and the study is short
    of its budget; the message is one line."""


def restart_limit(spec: StudySpec) -> int:
    """Replacement workers a command may start: ``[study] worker_restarts``, default twice
    ``workers``."""
    restarts = spec.study.worker_restarts
    return 2 * spec.workers if restarts is None else restarts


def death(exitcode: int) -> str:
    """How a worker ended, from its exit code: ``"worker killed by signal 9"`` or ``"worker
    exited with code 1"``."""
    if exitcode < 0:
        return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"


def _signal_name(exitcode: int) -> str:
    try:
        return f" ({signal.Signals(-exitcode).name})"
    except ValueError:
        return ""


class Supervisor:
    """Starts a study's worker processes, replaces those that die, stops them on Ctrl-C.

    Args:
        spec: the study (``workers`` processes).
        progress: prints the trials as they finish.
        stream: where to say that a worker died and was replaced (``None``: silent).
        steps: the study's budget in optimizer steps, if any (besides ``n_trials``).
    """

    def __init__(
        self,
        spec: StudySpec,
        progress: Progress,
        stream: IO[str] | None,
        steps: StepBudget | None = None,
    ) -> None:
        self.spec = spec
        self.steps = steps
        self.progress = progress
        self.stream = stream
        self.limit = restart_limit(spec)
        self.restarts = 0
        self.deaths: list[str] = []
        self.gpus = assign_gpus(visible_gpus(), spec.workers, spec.study.workers_per_gpu)
        self.context = worker_context(spec.threads, gpus=any(self.gpus))
        self.me = process_record()
        self.study = optuna.load_study(study_name=spec.name, storage=open_storage(spec.storage))
        self.alive: dict[Any, tuple[int, Any]] = {}  # sentinel -> (index, process)

    def run(self) -> None:
        """Run the workers until each has ended; raises :class:`WorkersFailed` if the study is
        short of its budget then."""
        try:
            for index in range(self.spec.workers):
                self._start(index)
            while self.alive:
                self.progress.update(self.study)
                # Wake up at a worker's exit, or after a second to print progress.
                ended = multiprocessing.connection.wait(list(self.alive), timeout=1.0)
                for sentinel in ended:
                    index, process = self.alive.pop(sentinel)
                    process.join()
                    if process.exitcode != 0:
                        self._replace(index, process)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                self._stop_all("interrupted (Ctrl-C) while it ran")
            else:
                self._stop_all(f"its command stopped ({type(exc).__name__}) while it ran")
            raise
        self.progress.update(self.study)
        if not self._budget_used():
            used = counted_trials(self.study)
            holds = f"the study holds {used} of its {self.spec.n_trials} trials"
            if self.steps is not None:
                ran = steps_used(self.study.get_trials(deepcopy=False))
                holds += f" and {ran} of its {self.steps.steps} optimizer steps"
            raise WorkersFailed(
                f"{holds}: worker processes died {len(self.deaths)} times and the restart limit "
                f"is {self.limit} ([study] worker_restarts); the last: "
                f"{self.deaths[-1] if self.deaths else 'none'}. Run the same command again to "
                "continue."
            )

    def _budget_used(self) -> bool:
        """Whether the study holds its trials, or has run its steps (a step budget)."""
        if counted_trials(self.study) >= self.spec.n_trials:
            return True
        trials = self.study.get_trials(deepcopy=False)
        return self.steps is not None and self.steps.spent(trials)

    def _start(self, index: int) -> None:
        setup = WorkerSetup(index=index, gpu=self.gpus[index], supervisor=self.me)
        process = self.context.Process(
            target=worker_main,
            args=(self.spec.to_dict(), self.spec.source, setup, self.steps),
            name=f"prl-tune-worker-{index}",
        )
        process.start()
        self.alive[process.sentinel] = (index, process)

    def _replace(self, index: int, process: Any) -> None:
        """A worker died: fail its trials, start another in its place if the limit allows."""
        how = death(process.exitcode)
        self.deaths.append(how)
        failed = fail_trials_of(
            self.study, process.pid, reason=f"its worker (pid {process.pid}) died", error=how
        )
        self.progress.update(self.study)
        trials = ", ".join(str(n) for n in failed)
        what = f"trial {trials} failed, to be run again" if failed else "it held no trial"
        if self._budget_used():
            then = "no worker needed in its place"
        elif self.restarts < self.limit:
            self.restarts += 1
            self._start(index)
            then = f"started another in its place (restart {self.restarts} of {self.limit})"
        else:
            then = f"no restart left (the limit is {self.limit}: [study] worker_restarts)"
        self._say(
            f"worker {index} (pid {process.pid}) {how.removeprefix('worker ')}"
            f"{_signal_name(process.exitcode)}; {what}; {then}"
        )

    def _stop_all(self, reason: str) -> None:
        """Stop every worker (SIGTERM, then SIGKILL) and fail the trials they ran."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a 2nd Ctrl-C: finish this
        try:
            processes = [process for _, process in self.alive.values()]
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(STOP_TIMEOUT_S)
                if process.exitcode is None:
                    process.kill()
                    process.join()
            for process in processes:
                fail_trials_of(self.study, process.pid, reason=reason)
            self.alive.clear()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _say(self, line: str) -> None:
        if self.stream is not None:
            print(line, file=self.stream, flush=True)


def worker_context(threads: int, *, gpus: bool = False) -> Any:
    """How worker processes start, the fastest way that is safe.

    - ``fork`` (Linux) when each worker runs one torch thread (``threads``), no GPU is handed
      out and this process has not initialized CUDA: the worker inherits the imported modules
      and loaded data and starts at once. A forked child that runs OpenMP with more than one
      thread after its parent did can hang, so not otherwise.
    - else a fork server that has imported the heavy modules once, itself never running torch
      (each worker then initializes CUDA afresh, on the GPU it was given);
    - ``spawn`` where neither exists (Windows).
    """
    import torch

    methods = multiprocessing.get_all_start_methods()
    single = threads == 1 and not gpus and not torch.cuda.is_initialized()
    if sys.platform == "linux" and single and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")
