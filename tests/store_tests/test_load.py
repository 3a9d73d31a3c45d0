"""Load on the store: 4 worker processes x 100 short trials on one SQLite file and on one
PostgreSQL server, as ``benchmarks/storage_workers.py`` measures it (it prints the rates)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import storage_workers


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="forks the test process")
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_four_workers_finish_exactly_their_trials_without_lock_errors(
    store: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    if store == "sqlite":
        url = f"sqlite:///{tmp_path / 'load.db'}"
    else:
        url = postgres_server.create_database()
    result = storage_workers.run_load(url, workers=4, trials=100, reports=1)
    assert (result.lock_errors, result.other_errors) == (0, 0)
    assert result.finished == 400
    assert result.stored == {"COMPLETE": 400}
    assert result.distinct_numbers  # trial numbers 0..399, none twice, none missing
