"""Shared test set-up: ``tests/`` on ``sys.path`` (for ``fixtures.*``), a study-file fixture, one
torch thread on request and the PostgreSQL server fixture (``fixtures.postgres``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from prl_tune.training import cpu_threads

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

#: Fixtures shared by several test folders: ``postgres_server``, a real PostgreSQL 15 server.
pytest_plugins = ["fixtures.postgres"]

STUDY = """
[study]
name = "{name}"
storage = "{storage}"
n_trials = {n_trials}
seed = 0
{study_extra}

[task]
name = "{task}"
epochs = {epochs}
{task_params}

[optimizer]
name = "sgd"

[space]
schedulers = {schedulers}
lr_max = {lr_max}
{warm_start}
{space_extra}
"""


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    """Write a small study file; returns (path, storage URL). ``warm_start``: the
    ``[space] warm_start`` line (default ``"none"``: no range test before the first trial, so
    a test about something else runs only its own trials; ``None``: the line left out, so the
    default applies)."""

    def write(
        *,
        name: str = "t",
        n_trials: int = 2,
        epochs: int = 1,
        task: str = "digits",
        task_params: str = 'params = { model = "mlp" }',
        schedulers: str = '["plrs"]',
        lr_max: str = "[0.01, 0.5]",
        study_extra: str = "",
        space_extra: str = "",
        filename: str = "study.toml",
        warm_start: str | None = "none",
    ) -> tuple[Path, str]:
        storage = f"sqlite:///{tmp_path / 'store.db'}"
        path = tmp_path / filename
        path.write_text(
            STUDY.format(
                name=name,
                storage=storage,
                n_trials=n_trials,
                epochs=epochs,
                task=task,
                task_params=task_params,
                schedulers=schedulers,
                lr_max=lr_max,
                study_extra=study_extra,
                space_extra=space_extra,
                warm_start="" if warm_start is None else f'warm_start = "{warm_start}"',
            ),
            encoding="utf-8",
        )
        return path, storage

    return write


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch CPU thread for the test (restored after it): tiny runs on a shared 2-core
    machine, where two threads that wait on each other cost more than they give."""
    with cpu_threads(1):
        yield
