"""``prl-tune report`` on a store that holds a scheduler comparison: the table ``compare`` stored
on its evaluation study, rendered as text, Markdown and HTML (in a real headless Chromium too),
and the evaluation runs' test scores named as what they are."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest

from prl_tune.cli import main
from prl_tune.report import (
    TABLE_ATTR,
    ComparisonTable,
    build_report,
    comparison_markdown,
    format_comparison,
    to_html,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A real comparison (2 schedulers, a step budget, 2 seeds) of a tiny task with a test
    split, run by the CLI; (storage URL, database file)."""
    folder = tmp_path_factory.mktemp("comparison-report")
    url = f"sqlite:///{folder / 'store.db'}"
    path = folder / "study.toml"
    path.write_text(
        f'[study]\nname = "cmp"\nstorage = "{url}"\nn_trials = 4\nseed = 0\nthreads = 1\n\n'
        '[task]\nname = "fixtures.compare_tasks:counted_test"\nepochs = 2\n\n'
        '[optimizer]\nname = "sgd"\n\n[space]\nschedulers = ["plrs", "constant"]\n'
        "lr_max = [0.05, 1.0]\nlr = [0.05, 1.0]\n\n"
        '[comparison]\ntrials = 2\nseeds = 2\nbudget = "steps"\n',
        encoding="utf-8",
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", str(path)]) == 0
    return url, folder / "store.db"


def _evaluation(url: str) -> optuna.Study:
    return optuna.load_study(study_name="cmp/evaluation", storage=url)


def _table(url: str) -> ComparisonTable:
    table = build_report(_evaluation(url)).comparison
    assert table is not None
    return table


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(db: Path, folder: Path) -> str:
    copy = folder / "copy.db"
    source, target = sqlite3.connect(db), sqlite3.connect(copy)
    source.backup(target)  # the WAL's content too
    source.close()
    target.close()
    return f"sqlite:///{copy}"


def test_the_text_report_shows_the_stored_table(store: tuple[str, Path], capsys) -> None:
    url, _ = store
    table = _table(url)
    assert main(["report", "--storage", url]) == 0  # one comparison's studies: its evaluation
    text = capsys.readouterr().out
    assert text.startswith("study 'cmp/evaluation': 4 trials")
    for line in format_comparison(table).splitlines():
        assert f"  {line}".rstrip() in text
    assert "steps: tuning (budget 24)" in text  # 2 trials x 2 epochs x 6 batches
    # the runs are scored on the test split: named so, never by the tuning metric
    assert "top 4 runs (one seed each):" in text
    assert "trial  test_accuracy  scheduler" in text
    assert "best val_accuracy:" not in text and "of a budget of" not in text
    # --study with the comparison's name, or the evaluation study's, gives the same report
    assert main(["report", "--storage", url, "--study", "cmp"]) == 0
    assert capsys.readouterr().out == text
    assert main(["report", "--storage", url, "--study", "cmp/evaluation"]) == 0
    assert capsys.readouterr().out == text


def test_a_tuning_study_is_reported_as_a_search_with_its_step_budget(
    store: tuple[str, Path], capsys
) -> None:
    url, _ = store
    assert main(["report", "--storage", url, "--study", "cmp/plrs/tuning-0"]) == 0
    text = capsys.readouterr().out
    assert "step budget: 24 optimizer steps" in text and "best val_accuracy:" in text
    assert "Scheduler comparison" not in text


def test_markdown_and_html_render_the_table_and_the_store_is_untouched(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, db = store
    before = _digest(db)
    table = _table(url)
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r.md")]) == 0
    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert comparison_markdown(table) in markdown
    assert "## Top runs (one seed each)" in markdown and "| trial | test_accuracy |" in markdown
    assert "## The answer" not in markdown  # one seed's best run is no answer
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<table class='comparison'><tr><th>scheduler</th>" in page
    assert "<td>plrs (baseline)</td>" in page and "<td>constant</td>" in page
    assert "<th>test accuracy mean ± sd</th>" in page
    for row in table.rows:
        assert f"<td>{row.tuning_finished}/{row.tuning_trials}</td>" in page
        assert f"<td>{row.study_steps[0]} ({row.study_steps[0] - 24:+})</td>" in page
    assert "<th>test_accuracy</th>" in page and "<th>val_accuracy</th>" not in page
    assert _digest(db) == before  # read-only


def test_evaluation_runs_are_named_by_their_test_score_without_a_table(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    _, db = store
    study = _evaluation(_copy(db, tmp_path))
    study.set_user_attr(TABLE_ATTR, None)  # as if the comparison stopped before its table
    report = build_report(study)
    assert report.comparison is None and report.evaluation
    assert report.metric == "test_accuracy" and report.budget is None


def test_strings_in_the_stored_table_are_escaped(store: tuple[str, Path], tmp_path: Path) -> None:
    url, db = store
    study = _evaluation(_copy(db, tmp_path))
    evil = dataclasses.replace(_table(url), study="<script>alert(1)</script>", baseline="<b>x")
    study.set_user_attr(TABLE_ATTR, evil.to_dict())
    page = to_html(build_report(study))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x" not in page and "difference to &lt;b&gt;x" in page


def test_a_table_stored_by_an_older_version_still_renders() -> None:
    data = {
        "study": "old",
        "metric": "val_accuracy",
        "direction": "maximize",
        "score": "test_accuracy",
        "scored_on": "test",
        "baseline": "plrs",
        "trials": 2,
        "tuning_seeds": [0],
        "seeds": [1000, 1001],
        "epochs": 1,
        "sampler": "tpe",
        "pruner": "none",
        "test_fraction": 0.2,
        "environments": [],
        "rows": [
            {
                "scheduler": "plrs",
                "tuning_finished": 2,
                "tuning_trials": 2,
                "tuning_best": [0.9],
                "trials_to_within": [1],
                "tuning_steps": 34,
                "scores": [0.9, 0.8],
                "study_means": [0.85],
                "runs": 2,
                "runs_planned": 2,
                "evaluation_steps": 34,
                "ci": None,
                "verdict": "baseline",
                "mean": 0.85,
                "sd": 0.07,
                "best": 0.9,
            }
        ],
    }
    table = ComparisonTable.from_dict(data)
    assert table.budget == "trials" and table.rows[0].study_steps == ()
    assert "2 tuning trials" in format_comparison(table)


_CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


def _screenshot(page: Path, shot: Path) -> np.ndarray:
    """The page in a 1200 x 1400 window, as an array of RGB pixels (one per row)."""
    from PIL import Image

    run = subprocess.run(
        [
            str(_CHROMIUM),
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            "--enable-logging=stderr",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert not [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    return np.asarray(image, dtype=np.int32).reshape(-1, 3)


@pytest.mark.skipif(
    _CHROMIUM is None,
    reason="needs a headless Chromium: apt-get install -y chromium-headless-shell (.ci/run does)",
)
def test_the_comparison_renders_in_a_real_browser(store: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = store
    report = build_report(_evaluation(url))
    with_table, without = tmp_path / "with.html", tmp_path / "without.html"
    with_table.write_text(to_html(report), encoding="utf-8")
    without.write_text(to_html(dataclasses.replace(report, comparison=None)), encoding="utf-8")
    shown = _screenshot(with_table, tmp_path / "with.png")
    bare = _screenshot(without, tmp_path / "without.png")

    def headers(pixels: np.ndarray) -> int:  # the background of table headers, #f5f5f5
        return int((pixels == 245).all(axis=1).sum())

    def ink(pixels: np.ndarray) -> int:  # text
        return int((pixels.max(axis=1) < 150).sum())

    assert headers(shown) > headers(bare) + 5000  # the table's header row is drawn
    assert ink(shown) > ink(bare) + 2000  # and its cells and notes
