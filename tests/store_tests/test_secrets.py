"""No secret in any output: a password in a storage URL appears in no message, progress line,
summary, report, stored attribute or table row (``redact`` is the one helper behind all of
them). The error paths are in ``test_storage_errors.py``."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from fixtures.postgres import PostgresServer

from prl_tune.cli import main
from prl_tune.store import SPEC_ATTR, redact

optuna.logging.set_verbosity(optuna.logging.WARNING)

SECRET = "S3cretPw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:S3cretPw@db.lab:5432/studies", "postgresql://u:***@db.lab:5432/studies"),
        ("postgresql+psycopg://u:S3cretPw@db/s", "postgresql+psycopg://u:***@db/s"),
        ("postgresql://u:S3c%40retPw@db/s", "postgresql://u:***@db/s"),  # an encoded '@'
        ("postgresql://u@db/s?password=S3cretPw", "postgresql://u@db/s?password=***"),
        (
            "postgresql://u@db/s?sslmode=require&sslpassword=S3cretPw",
            "postgresql://u@db/s?sslmode=require&sslpassword=***",
        ),
        # SQLAlchemy cannot parse these; the password goes all the same.
        ("postgresql://u:S3cretPw@db:port5432/s", "postgresql://u:***@db:port5432/s"),
        ("postgresql://u:S3c/ret:Pw@db/s", "postgresql://u:***@db/s"),
        # Nothing to hide.
        ("sqlite:///prl_tune.db", "sqlite:///prl_tune.db"),
        ("postgresql://u@db/s", "postgresql://u@db/s"),
        ("not a url", "not a url"),
    ],
)
def test_redact_hides_every_password_form(url: str, shown: str) -> None:
    assert redact(url) == shown


def _stored_text(url: str) -> str:
    """Every study and trial attribute, user and system, of every study at ``url``, as JSON."""
    storage = optuna.storages.RDBStorage(url)
    parts = []
    for summary in optuna.get_all_study_summaries(storage):
        study_id = storage.get_study_id_from_name(summary.study_name)
        parts.append(storage.get_study_user_attrs(study_id))
        parts.append(storage.get_study_system_attrs(study_id))
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            parts += [trial.user_attrs, trial.system_attrs, trial.params]
    storage.engine.dispose()
    return json.dumps(parts, default=str)


@pytest.mark.slow
def test_no_command_shows_or_stores_the_password(
    postgres_server: PostgresServer,
    write_study,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = write_study(n_trials=2, study_extra="workers = 2")
    url = postgres_server.create_database()
    assert SECRET in url
    monkeypatch.chdir(tmp_path)  # the range test's plot and the reports go here
    # Every command that succeeds, with progress lines, worker processes and the summary;
    # then the paths that print the URL in an error of the study itself.
    runs = [
        (["tune", str(path), "--storage", url], 0),
        (["tune", str(path), "--storage", url, "--quiet", "--n-trials", "3"], 0),  # resumes
        (["range-test", str(path), "--storage", url, "--plot", "curve.png"], 0),
        (["summary", "--storage", url], 0),
        (["report", "--storage", url], 0),
        (["report", "--storage", url, "--out", "r.html"], 0),
        (["report", "--storage", url, "--out", "r.md"], 0),
        (["report", "--storage", url, "--dashboard-note"], 0),
        (["report", "--storage", url, "--study", "nope"], 2),
        (["tune", str(path), "--storage", url, "--set", "task.epochs=2"], 2),
    ]
    printed = []
    for argv, code in runs:
        assert main(argv) == code, argv
        out, err = capfd.readouterr()  # the file descriptors: logging and workers too
        printed.append(out + err)
    everything = "\n".join(printed)
    assert SECRET not in everything
    assert "u:***@127.0.0.1" in everything  # the URL is shown, redacted

    study = optuna.load_study(study_name="t", storage=url)
    assert len(study.trials) == 3  # the redacted stored spec did not stop the resume
    assert study.user_attrs[SPEC_ATTR]["study"]["storage"] == redact(url)
    for name in ("r.html", "r.md"):
        assert SECRET not in (tmp_path / name).read_text(encoding="utf-8")
    assert SECRET not in _stored_text(url)
    assert SECRET not in postgres_server.dump(url.rsplit("/", 1)[1])  # every table's rows
