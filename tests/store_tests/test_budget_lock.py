"""The budget lock, on SQLite and a real PostgreSQL server, between real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
from fixtures.cli_runs import cli_env
from optuna.trial import TrialState

from prl_tune.store import BudgetLock, LocalBudgetWarning, budget_lock_key, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

HOLD = """
import sys, time
from prl_tune.store import BudgetLock, _budget

_budget.LOCK_HOLD_LIMIT_S = int(sys.argv[3]) if len(sys.argv) > 3 else _budget.LOCK_HOLD_LIMIT_S
with BudgetLock(sys.argv[1], "s"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""

# A worker's hand-out in miniature: under the lock, count, enqueue the trial that the count says
# is next, ask; then run and tell outside it.
WORKER = """
import sys
import warnings
import optuna
from prl_tune.store import BudgetLock, open_storage, uses_budget

url, n_trials = sys.argv[1], int(sys.argv[2])
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.simplefilter("ignore")  # ask() on a storage with heartbeats
study = optuna.load_study(study_name="s", storage=open_storage(url))
lock = BudgetLock(url, "s")
while True:
    with lock:
        used = sum(uses_budget(t) for t in study.get_trials(deepcopy=False))
        if used >= n_trials:
            break
        study.enqueue_trial({"x": float(used % 2)})
        trial = study.ask()
    study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
lock.close()
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_server").create_database())


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=cli_env(), stdout=subprocess.PIPE, text=True
    )


def _hold(url: str, seconds: float, *limit: str) -> subprocess.Popen[str]:
    """A process that holds the lock for ``seconds``, once it has said so (``limit``: its
    ``LOCK_HOLD_LIMIT_S``)."""
    holder = _python(HOLD, url, str(seconds), *limit)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _take_within(url: str, seconds: float) -> float | None:
    """Seconds it took this process to take the lock, or ``None`` if not within ``seconds``."""
    taken: list[float] = []
    lock = BudgetLock(url, "s")
    start = time.monotonic()

    def take() -> None:
        with lock:
            taken.append(time.monotonic() - start)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(seconds)
    if not taken:
        return None
    lock.close()
    return taken[0]


def test_the_lock_keeps_out_another_process_until_it_is_released(url: str) -> None:
    holder = _hold(url, 2.0)
    try:
        waited = _take_within(url, 60)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert waited is not None and waited >= 1.0


def test_a_holder_killed_by_sigkill_releases_the_lock(url: str) -> None:
    holder = _hold(url, 3600)
    try:
        assert _take_within(url, 0.5) is None  # held
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        waited = _take_within(url, 30)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert waited is not None and waited < 5


def test_a_postgresql_holder_that_stops_answering_loses_the_lock(postgres_server) -> None:
    """A machine that vanished without closing its connection (here: a stopped process) holds
    the lock only until the server ends its idle transaction (``LOCK_HOLD_LIMIT_S``, 2 s here)."""
    url = postgres_server.create_database()
    holder = _hold(url, 3600, "2")
    try:
        os.kill(holder.pid, signal.SIGSTOP)
        waited = _take_within(url, 30)
    finally:
        holder.kill()
        os.kill(holder.pid, signal.SIGCONT)
        holder.wait(timeout=30)
    assert waited is not None and 1.5 <= waited < 10


def test_three_processes_hand_out_exactly_the_budget_and_each_enqueued_trial_once(
    url: str,
) -> None:
    optuna.create_study(study_name="s", storage=open_storage(url))
    workers = [_python(WORKER, url, "30") for _ in range(3)]
    try:
        assert [w.wait(timeout=240) for w in workers] == [0, 0, 0]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    assert len(trials) == 30
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # Trial k was enqueued at count k and asked by the process that enqueued it.
    assert [t.params["x"] for t in trials] == [float(t.number % 2) for t in trials]


def test_another_database_gets_a_lock_on_this_machine_and_says_so() -> None:
    url = "mysql://u:S3cretPw@127.0.0.1/db"
    with pytest.warns(LocalBudgetWarning) as caught:
        first = BudgetLock(url, "s")
    message = str(caught[0].message)
    assert "only by the commands on this machine" in message and "postgresql://" in message
    assert "S3cretPw" not in message and "\n" not in message
    with pytest.warns(LocalBudgetWarning):
        second = BudgetLock(url, "s")
    assert first.path == second.path and first.path.parent == Path(tempfile.gettempdir())
    taken = threading.Event()

    def take_second() -> None:
        with second:
            taken.set()

    try:
        with first:
            waiter = threading.Thread(target=take_second, daemon=True)
            waiter.start()
            assert not taken.wait(timeout=0.5)  # held by the first
        assert taken.wait(timeout=30)  # free once the first let go
        waiter.join(timeout=30)
    finally:
        first.close()
        second.close()


def test_the_postgresql_key_is_a_bigint_fixed_by_the_study_name() -> None:
    assert budget_lock_key("a") == budget_lock_key("a") != budget_lock_key("b")
    assert -(2**63) <= budget_lock_key("a") < 2**63
    fixed = subprocess.run(
        [sys.executable, "-c", "from prl_tune.store import budget_lock_key as k; print(k('a'))"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert int(fixed.stdout) == budget_lock_key("a")  # another process, another hash seed
