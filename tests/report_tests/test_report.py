"""``prl-tune report``: a study from a real run, as text, Markdown and HTML, read-only."""

from __future__ import annotations

import hashlib
import math
import shutil
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.cli import main
from prl_tune.config import load_spec
from prl_tune.hosts.optuna import run_study
from prl_tune.report import OUTCOMES, build_report, write_report
from prl_tune.report._figures import replay_best_draws

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A real study: 12 trials of the digits MLP over a wide lr_max range (some explode)."""
    folder = tmp_path_factory.mktemp("report")
    path = folder / "study.toml"
    url = f"sqlite:///{folder / 'store.db'}"
    path.write_text(
        f"""
[study]
name = "wide"
storage = "{url}"
n_trials = 12
seed = 0

[task]
epochs = 2
params = {{ model = "mlp" }}

[space]
lr_max = [0.01, 20.0]
warm_start = "none"                 # the whole wide range: some trials explode
""",
        encoding="utf-8",
    )
    run_study(load_spec(path), stream=None)
    return url, folder / "store.db"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_report_matches_the_store(store: tuple[str, Path], capsys) -> None:
    url, _ = store
    study = optuna.load_study(study_name="wide", storage=url)
    report = build_report(study)
    states = Counter(t.state for t in study.trials)
    assert report.counts["complete"] == states[TrialState.COMPLETE]
    pruned = sum(report.counts[k] for k in OUTCOMES if k.startswith("pruned"))
    assert pruned == states[TrialState.PRUNED]
    assert report.counts["pruned by the rules"] >= 1  # lr_max up to 20 explodes
    best = study.best_trial
    assert report.best is not None and report.best.number == best.number
    assert main(["report", "--storage", url]) == 0  # the store's only study
    text = capsys.readouterr().out
    assert f"best val_accuracy: {best.value:.4g} (trial {best.number})" in text
    assert f"best lr_min: {best.user_attrs['lr_min']:.4g}" in text
    assert f"best lr_max: {best.user_attrs['lr_max']:.4g}" in text
    assert (
        f"copy: PLRS(optimizer, lr_min={best.user_attrs['lr_min']:.4g}, "
        f"lr_max={best.user_attrs['lr_max']:.4g})" in text
    )
    assert f"pruned by: rules {report.counts['pruned by the rules']}" in text
    # summary is the text form of the same report
    assert main(["summary", "--storage", url, "--study", "wide"]) == 0
    assert capsys.readouterr().out == text


def test_html_and_markdown_are_complete_and_the_store_is_untouched(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    url, db = store
    before = _digest(db)
    study = optuna.load_study(study_name="wide", storage=url)
    best = study.best_trial
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "http://" not in page and "https://" not in page
    assert "<script" not in page  # static: nothing to run, nothing to fetch
    assert page.count("data:image/png;base64,") >= 3  # the map, the curves, the draws
    assert f"{best.user_attrs['lr_max']:.4g}" in page
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r.md")]) == 0
    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    for name in ("map", "curves", "draws"):
        png = tmp_path / f"r-{name}.png"
        assert f"![{name}]({png.name})" in markdown
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert _digest(db) == before  # read-only: the store's bytes are unchanged


def test_plrs_draws_are_replayed_exactly_from_the_seed(store: tuple[str, Path]) -> None:
    url, _ = store
    report = build_report(optuna.load_study(study_name="wide", storage=url))
    drawn = replay_best_draws(report)
    best = next(r.best_trial for r in report.schedulers if r.scheduler == "plrs")
    assert best is not None
    history = best.attrs["history"]
    assert len(drawn) == best.attrs["steps"] == history[-1]["step"]
    start = 0
    for epoch in history:  # the stored per-epoch LR statistics of the real run
        own = drawn[start : int(epoch["step"])]
        start = int(epoch["step"])
        assert min(own) == epoch["lr_min"] and max(own) == epoch["lr_max"]
        assert math.fsum(own) / len(own) == epoch["lr_mean"]


@pytest.mark.parametrize(
    ("scheduler", "extra"),
    [("plrs-epoch", ""), ("plrs", 'plrs_distribution = ["log-uniform"]\nplrs_draw_every = [3]')],
)
def test_a_plrs_variants_draws_are_replayed_with_its_choices(
    write_study, scheduler: str, extra: str
) -> None:
    # A study of a named PLRS variant, or of PLRS with its choices searched: the replay uses
    # the trial's draw frequency and distribution, so it matches the run's per-epoch LRs.
    path, storage = write_study(
        n_trials=2, epochs=3, schedulers=f'["{scheduler}"]', space_extra=extra
    )
    run_study(load_spec(path), stream=None)
    report = build_report(optuna.load_study(study_name="t", storage=storage))
    drawn = replay_best_draws(report)
    best = next(r.best_trial for r in report.schedulers if r.scheduler == scheduler)
    assert best is not None
    history = best.attrs["history"]
    assert len(drawn) == best.attrs["steps"] == history[-1]["step"]
    start = 0
    for epoch in history:
        own = drawn[start : int(epoch["step"])]
        start = int(epoch["step"])
        assert min(own) == epoch["lr_min"] and max(own) == epoch["lr_max"]
        assert math.fsum(own) / len(own) == epoch["lr_mean"]
    if scheduler == "plrs-epoch":  # one draw per epoch
        assert all(e["lr_min"] == e["lr_max"] for e in history)
    else:  # a new draw every 3 steps, not every step
        assert drawn[0] == drawn[1] == drawn[2] != drawn[3]


def test_strings_from_the_store_are_escaped_in_html(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    study = optuna.create_study(study_name="<script>alert(1)</script>", storage=url)
    trial = study.ask()
    trial.set_user_attr("error", "<img src=x onerror=alert(2)>")
    study.tell(trial, state=TrialState.FAIL)
    page = write_report(study, tmp_path / "evil.html")
    text = Path(page).read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)" in text
    assert "<img src=x" not in text
    assert "not made by prl-tune" in text.lower()


def _one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prl-tune: error: "), err
    return err[0]


def test_bad_stores_give_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.db"
    line = _one_error_line(capsys, ["report", "--storage", f"sqlite:///{missing}"])
    assert "no SQLite file" in line and not missing.exists()  # nothing created
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database")
    line = _one_error_line(capsys, ["report", "--storage", f"sqlite:///{text_file}"])
    assert "is not an SQLite database" in line
    empty_sqlite = tmp_path / "empty.db"
    sqlite3.connect(empty_sqlite).execute("CREATE TABLE t (x)").connection.commit()
    line = _one_error_line(capsys, ["report", "--storage", f"sqlite:///{empty_sqlite}"])
    assert "holds no Optuna study tables" in line
    assert sqlite3.connect(empty_sqlite).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("t",)
    ]  # nothing was created in it
    two = f"sqlite:///{tmp_path / 'two.db'}"
    optuna.create_study(study_name="a", storage=two)
    optuna.create_study(study_name="b", storage=two)
    line = _one_error_line(capsys, ["report", "--storage", two])
    assert "--study: must name one of the 2 studies" in line and "'a', 'b'" in line
    line = _one_error_line(capsys, ["report", "--storage", two, "--study", "c"])
    assert "no study named 'c'" in line
    line = _one_error_line(capsys, ["report", "--storage", two, "--study", "a", "--format", "md"])
    assert "--out: the Markdown report needs a file" in line


def test_an_older_optuna_schema_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    optuna.create_study(study_name="old", storage=url)
    connection = sqlite3.connect(db)
    connection.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    connection.commit()
    connection.close()
    before = _digest(db)
    line = _one_error_line(capsys, ["report", "--storage", url])
    assert "optuna storage upgrade" in line
    assert _digest(db) == before


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda study: None, "0 trials"),
        (lambda study: study.tell(study.ask(), state=TrialState.FAIL), "by state: FAIL 1"),
    ],
    ids=["empty", "only-failed"],
)
def test_a_study_with_nothing_to_show_says_so(
    make: Callable[[optuna.Study], None], expected: str, tmp_path: Path, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    make(optuna.create_study(study_name="s", storage=url))
    assert main(["report", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert expected in out and "no complete trial yet: nothing to show" in out
    assert main(["report", "--storage", url, "--out", str(tmp_path / "s.html")]) == 0
    assert "nothing to show" in (tmp_path / "s.html").read_text(encoding="utf-8")


def test_tune_writes_the_report_the_study_file_asks_for(
    write_study, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "done.html"
    path, _ = write_study(name="asks", n_trials=2, study_extra=f'report = "{out}"')
    assert main(["tune", str(path), "--quiet"]) == 0
    assert f"report written to {out}" in capsys.readouterr().err
    assert "Study <code>asks</code>" in out.read_text(encoding="utf-8")
    # without [study] report, tune says how to get one
    other, _ = write_study(name="hint", n_trials=1, filename="hint.toml")
    assert main(["tune", str(other), "--quiet"]) == 0
    assert "report: prl-tune report --storage" in capsys.readouterr().err


_CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.mark.skipif(
    _CHROMIUM is None,
    reason="needs a headless Chromium: apt-get install -y chromium-headless-shell (.ci/run does)",
)
def test_the_html_report_renders_in_a_real_browser(store: tuple[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    url, _ = store
    page = tmp_path / "r.html"
    write_report(optuna.load_study(study_name="wide", storage=url), page)
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            str(_CHROMIUM),
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,2600",
            "--enable-logging=stderr",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    logged = run.stderr.splitlines()
    assert not [line for line in logged if "CONSOLE" in line or "Failed to load" in line]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2600)
    pixels = list(image.getdata())
    white = sum(p == (255, 255, 255) for p in pixels)
    assert white < 0.95 * len(pixels)  # not a blank page
    # The plots are drawn: coloured pixels (the map's colour bar and points, the curves, the
    # histogram; the text and tables are grey) and the unstable trials' red crosses.
    colourful = sum(max(p) - min(p) > 60 for p in pixels)
    red = sum(abs(r - 214) + abs(g - 39) + abs(b - 40) < 60 for r, g, b in pixels)
    assert colourful > 20000 and red > 20, (colourful, red)


def test_passwords_in_storage_urls_are_redacted(capsys) -> None:
    url = "postgresql://tuner:s3cret-pw@127.0.0.1:1/studies"
    line = _one_error_line(capsys, ["report", "--storage", url])
    assert "s3cret-pw" not in line and "tuner:***@127.0.0.1" in line


def test_the_dashboard_note_is_written_only_when_asked(
    store: tuple[str, Path], tmp_path: Path, capsys
) -> None:
    _, db = store
    copy = tmp_path / "copy.db"
    source, target = sqlite3.connect(db), sqlite3.connect(copy)
    source.backup(target)  # the WAL's content too
    source.close()
    target.close()
    url = f"sqlite:///{copy}"
    assert main(["report", "--storage", url]) == 0
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name("wide")
    assert not any(k.startswith("dashboard:") for k in storage.get_study_system_attrs(study_id))
    assert main(["report", "--storage", url, "--dashboard-note"]) == 0
    assert "note saved on study 'wide'" in capsys.readouterr().err
    # optuna-dashboard's note: its text in chunks of the study's system attributes
    attrs = storage.get_study_system_attrs(study_id)
    note = "".join(str(v) for k, v in sorted(attrs.items()) if k.startswith("dashboard:note_str:"))
    best = optuna.load_study(study_name="wide", storage=url).best_trial
    assert note.startswith("# Study `wide`")
    assert f"PLRS(optimizer, lr_min={best.user_attrs['lr_min']:.4g}" in note


def test_a_recorded_range_test_is_drawn(store: tuple[str, Path], tmp_path: Path) -> None:
    from prl_tune.config import StudySpec, run_range_test
    from prl_tune.store import SPEC_ATTR, record_range_test

    _, db = store
    copy = tmp_path / "copy.db"
    source, target = sqlite3.connect(db), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    study = optuna.load_study(study_name="wide", storage=f"sqlite:///{copy}")
    spec = StudySpec.from_dict(study.user_attrs[SPEC_ATTR])
    record_range_test(study, spec, run_range_test(spec))
    out = tmp_path / "r.md"
    write_report(study, out)
    assert "![range_test](r-range_test.png)" in out.read_text(encoding="utf-8")
    assert (tmp_path / "r-range_test.png").read_bytes()[:4] == b"\x89PNG"


def test_several_schedulers_get_the_comparison_table(write_study, capsys) -> None:
    path, url = write_study(name="cmp", n_trials=4, schedulers='["plrs", "cosine"]')
    run_study(load_spec(path), stream=None)
    study = optuna.load_study(study_name="cmp", storage=url)
    report = build_report(study)
    rows = {row.scheduler: row for row in report.schedulers}
    assert set(rows) == {"plrs", "cosine"}
    assert rows["plrs"].trials == rows["cosine"].trials == 2  # equal allocation
    for name, row in rows.items():
        own = [t for t in study.trials if t.user_attrs.get("scheduler") == name]
        values = [t.value for t in own if t.state == TrialState.COMPLETE]
        assert row.best == max(values)
        assert row.mean == pytest.approx(sum(values) / len(values))
    assert main(["report", "--storage", url]) == 0
    text = capsys.readouterr().out
    assert "schedulers:" in text and "trials to within 1%" in text
    cosine_lr = rows["cosine"].best_trial.lr  # type: ignore[union-attr]
    assert f'build_scheduler("cosine", optimizer, lr={cosine_lr:.4g}, epochs=1' in text
