"""What every host does while trials run: the sampler, heartbeats, and failing orphaned trials.

A trial is RUNNING in the store from ``study.ask()`` until ``study.tell()``. If the process that
asked dies in between (SIGKILL, a lost machine), nothing tells: the trial would stay RUNNING for
ever. Two guards end such trials, so a resumed study re-runs them:

- **owner**: each trial records the host, pid and process start time of the process that runs
  it (``OWNER_ATTR``). The next run on the same host fails the trials whose owner is gone at once.
- **heartbeats**: the owner beats for each of its running trials every ``HEARTBEAT_INTERVAL_S``;
  a trial without a beat for ``HEARTBEAT_GRACE_S`` is failed by the next run on any host
  (Optuna's ``fail_stale_trials``).

A trial failed this way carries ``fail_reason`` and no ``error``, so it does not use up the
budget (``counted_trials``).
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from prl_tune.store._urls import HEARTBEAT_INTERVAL_S

if TYPE_CHECKING:
    from prl_tune.config import StudySpec

OWNER_ATTR = "prl_tune.owner"


def make_sampler(
    spec: StudySpec, worker: int = 0, *, concurrent: bool = False, done: int = 0
) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded per worker and per resume, so neither parallel workers nor a
    resumed run propose the points proposed before.

    Args:
        spec: the ``StudySpec``.
        worker: the worker's index.
        concurrent: whether other trials run while this one is proposed (TPE then uses the
            constant liar, so concurrent trials spread out).
        done: the trials the study holds when this run starts (0 for a new study).
    """
    seed = (spec.seed + 1000 * worker + 7919 * done) % 2**32
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
            constant_liar=concurrent,
        )


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def claim(trial: optuna.Trial) -> None:
    """Record this process as the owner of a trial it is about to run."""
    trial.set_user_attr(OWNER_ATTR, _owner())


def _owner_gone(owner: Any) -> bool:
    """Whether ``owner`` was a process on this host that no longer runs."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    started = owner.get("started")
    return started is not None and _start_time(pid) != started


def fail_orphans(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose process died; returns their numbers.

    Trials owned by a dead process on this host are failed at once; those of other hosts once
    their heartbeat is older than the grace period.
    """
    failed: list[int] = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = frozen.user_attrs.get(OWNER_ATTR)
        if not isinstance(owner, dict) or not _owner_gone(owner):
            continue
        trial = optuna.Trial(study, frozen._trial_id)
        trial.set_user_attr(
            "fail_reason", f"its process (pid {owner['pid']} on {owner['host']}) died while it ran"
        )
        try:
            study.tell(trial, state=TrialState.FAIL)
        except ValueError:  # another process ended it first
            continue
        failed.append(frozen.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


class Heartbeat:
    """Beats for every trial in :attr:`trial_ids` every ``HEARTBEAT_INTERVAL_S`` while open.

    Example:
        >>> with Heartbeat(storage) as beat:  # doctest: +SKIP
        ...     beat.add(trial_id)
    """

    def __init__(self, storage: optuna.storages.RDBStorage, interval: float = HEARTBEAT_INTERVAL_S):
        self.storage = storage
        self.interval = interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prl-tune-heartbeat", daemon=True)

    def add(self, trial_id: int) -> None:
        """Start beating for ``trial_id`` (a beat is recorded at once)."""
        with self._lock:
            self._ids.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def discard(self, trial_id: int) -> None:
        """Stop beating for ``trial_id``."""
        with self._lock:
            self._ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                self.storage.record_heartbeat(trial_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
