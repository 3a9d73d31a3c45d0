"""What every host does while trials run: the sampler, heartbeats, and failing orphaned trials.

A trial is RUNNING in the store from ``study.ask()`` until ``study.tell()``. If the process that
asked dies in between (SIGKILL, a lost machine), nothing tells: the trial would stay RUNNING for
ever. Three guards end such trials, so the study re-runs them:

- **supervisor**: a command's worker processes are watched by the command, which fails the
  trials of a worker that died at once (``fail_trials_of``) and starts another worker.
- **owner**: each trial records the host, pid and process start time of the process that runs
  it, and of the supervisor that watches it (``OWNER_ATTR``). Any worker on the same host fails
  the trials whose owner is gone (unless its supervisor lives and will do it) before it asks for
  a trial.
- **heartbeats**: the owner beats for each of its running trials every ``HEARTBEAT_INTERVAL_S``;
  a trial without a beat for ``HEARTBEAT_GRACE_S`` is failed by a worker on any host (Optuna's
  ``fail_stale_trials``) before it asks. ``PRL_TUNE_HEARTBEAT_GRACE_S`` shortens the grace period
  (tests).

A trial failed this way carries ``fail_reason``, so it does not use up the budget
(``counted_trials``).
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from prl_tune.config import SpecError
from prl_tune.store._urls import HEARTBEAT_GRACE_S, HEARTBEAT_INTERVAL_S

if TYPE_CHECKING:
    from prl_tune.config import StudySpec

OWNER_ATTR = "prl_tune.owner"
#: Study user attribute: how many workers have started on the study (each takes the next number,
#: so no two workers on any machine seed their samplers alike).
WORKERS_STARTED_ATTR = "prl_tune.workers_started"
#: Environment variable: the heartbeat grace period in seconds (default ``HEARTBEAT_GRACE_S``).
GRACE_ENV = "PRL_TUNE_HEARTBEAT_GRACE_S"


def heartbeat_grace_s() -> int:
    """Seconds without a heartbeat after which a running trial counts as dead: ``GRACE_ENV``
    if set (whole seconds >= 1), else ``HEARTBEAT_GRACE_S``.

    Raises:
        SpecError: ``GRACE_ENV`` is not an integer >= 1.
    """
    raw = os.environ.get(GRACE_ENV)
    if raw is None:
        return HEARTBEAT_GRACE_S
    try:
        grace = int(raw)
    except ValueError:
        grace = 0
    if grace < 1:
        raise SpecError(f"{GRACE_ENV}: must be an integer >= 1 (seconds) but got {raw!r}.")
    return grace


def heartbeat_interval_s() -> float:
    """Seconds between heartbeats: ``HEARTBEAT_INTERVAL_S``, or a third of a shorter grace."""
    return min(float(HEARTBEAT_INTERVAL_S), heartbeat_grace_s() / 3)


def watch_heartbeats(storage: optuna.storages.RDBStorage) -> optuna.storages.RDBStorage:
    """``storage`` with the grace period of :func:`heartbeat_grace_s`; returns it."""
    storage.grace_period = heartbeat_grace_s()
    return storage


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


def process_record(pid: int | None = None) -> dict[str, Any]:
    """Who a process is, for an owner record: this host, ``pid`` (default: this process) and its
    start time (which tells a reused pid apart)."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def claim(trial: optuna.Trial, supervisor: Mapping[str, Any] | None = None) -> None:
    """Record this process as the owner of a trial it is about to run.

    ``supervisor``: the :func:`process_record` of the process that watches this one, if any;
    while it lives, it fails the trial if this process dies, and no one else does.
    """
    owner = process_record()
    if supervisor is not None:
        owner["supervisor"] = dict(supervisor)
    trial.set_user_attr(OWNER_ATTR, owner)


def _process_gone(record: Any) -> bool:
    """Whether ``record`` (a :func:`process_record`) was a process on this host that no longer
    runs; ``False`` for another host's, which cannot be checked from here."""
    if not isinstance(record, dict) or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    started = record.get("started")
    return started is not None and _start_time(pid) != started


def _fail(study: optuna.Study, frozen: optuna.trial.FrozenTrial, attrs: dict[str, str]) -> bool:
    """Fail a RUNNING trial with ``attrs``; ``False`` if another process ended it first."""
    trial = optuna.Trial(study, frozen._trial_id)
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):  # another ended it first
        return False
    return True


def fail_orphans(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose process died; returns their numbers.

    - a trial owned by a dead process on this host: at once, unless the process's supervisor
      lives (it fails the trial itself, saying why);
    - a trial of any host whose heartbeat is older than the grace period (Optuna's
      ``fail_stale_trials``: the storage's ``grace_period``);
    - a trial without an owner that started more than :func:`heartbeat_grace_s` ago (its
      process died between asking for it and claiming it).

    Workers call it under the :class:`~prl_tune.store.BudgetLock`, where no live worker is
    between asking and claiming.
    """
    failed: list[int] = []
    too_old = datetime.now() - timedelta(seconds=heartbeat_grace_s())
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = frozen.user_attrs.get(OWNER_ATTR)
        if isinstance(owner, dict):
            if not _process_gone(owner) or (
                "supervisor" in owner and not _process_gone(owner["supervisor"])
            ):
                continue
            reason = f"its process (pid {owner['pid']} on {owner['host']}) died while it ran"
        elif frozen.datetime_start is not None and frozen.datetime_start < too_old:
            reason = "its process died before it claimed the trial"
        else:
            continue
        if _fail(study, frozen, {"fail_reason": reason}):
            failed.append(frozen.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


def fail_trials_of(
    study: optuna.Study, pid: int, *, reason: str, error: str | None = None
) -> list[int]:
    """Fail the RUNNING trials that process ``pid`` of this host claimed; returns their numbers.

    Each gets ``fail_reason = reason`` (so it is re-run: it does not use up the budget) and,
    when given, ``error``.
    """
    here = socket.gethostname()
    attrs = {"fail_reason": reason} if error is None else {"error": error, "fail_reason": reason}
    failed = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = frozen.user_attrs.get(OWNER_ATTR)
        if not isinstance(owner, dict) or (owner.get("host"), owner.get("pid")) != (here, pid):
            continue
        if _fail(study, frozen, attrs):
            failed.append(frozen.number)
    return failed


def take_worker_number(study: optuna.Study) -> int:
    """A number no other worker of the study got, on any machine, in any run (call it under the
    :class:`~prl_tune.store.BudgetLock`): 0, 1, 2, ... in the order workers start."""
    number = int(study.user_attrs.get(WORKERS_STARTED_ATTR, 0))
    study.set_user_attr(WORKERS_STARTED_ATTR, number + 1)
    return number


class Heartbeat:
    """Beats for every trial it holds every ``interval`` seconds while open (default
    :func:`heartbeat_interval_s`).

    Example:
        >>> with Heartbeat(storage) as beat:  # doctest: +SKIP
        ...     beat.add(trial_id)
    """

    def __init__(self, storage: optuna.storages.RDBStorage, interval: float | None = None):
        self.storage = storage
        self.interval = heartbeat_interval_s() if interval is None else interval
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
