"""A :class:`StudyReport` as text, Markdown (PNGs beside it) or one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import optuna

from prl_tune.report._comparison import comparison_html, comparison_markdown, format_comparison
from prl_tune.report._figures import figures, figures_available
from prl_tune.report._model import OUTCOMES, StudyReport, TrialView, build_report
from prl_tune.report._text import fmt, format_table

FORMATS = ("html", "md", "text")
_NO_FIGURES = "No figures: they need matplotlib (pip install 'prl_tune[plot]')."
_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".txt": "text"}
_CAPTIONS = {
    "map": "Every trial in the (lr_min, lr_max) plane. Complete trials are coloured by the "
    "metric; the shaded band is the learned stability boundary, or where stable and unstable "
    "ranges overlap.",
    "curves": "The metric per epoch of the top trials; the training loss of unstable trials up "
    "to the step where the rules stopped them.",
    "draws": "The LRs the best PLRS trial drew, replayed from its seed, against the uniform "
    "density on [lr_min, lr_max].",
    "range_test": "The LR range test this study ran, with its suggested bounds.",
}


def format_for(out: str | Path | None, format: str | None) -> str:
    """The report format: ``format`` if given, else from ``out``'s extension, else text."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)} but got {format!r}.")
        return format
    if out is None:
        return "text"
    return _SUFFIXES.get(Path(out).suffix.lower(), "text")


def write_report(
    study: optuna.Study, out: str | Path | None = None, *, format: str | None = None
) -> str:
    """Render a study's report; returns the text (``out=None``) or writes ``out`` and returns
    its path. Markdown writes its PNGs beside ``out`` (``STEM-map.png``, ...). Reads the store
    only."""
    kind = format_for(out, format)
    report = build_report(study)
    if kind == "text":
        text = to_text(report)
    elif kind == "html":
        text = to_html(report)
    else:
        if out is None:
            raise ValueError(
                "out must be a file path for the Markdown format (its PNGs go beside)."
            )
        text = to_markdown(report, Path(out))
    if out is None:
        return text
    Path(out).write_text(text, encoding="utf-8")
    return str(out)


def _overview(report: StudyReport) -> list[tuple[str, str]]:
    done = len(report.trials)
    rows = [
        ("study", report.study_name),
        ("task", report.task),
        ("backend", _backends(report)),
        ("trials", f"{done}" + _budget_text(report)),
    ]
    for name in OUTCOMES:
        count = report.counts[name]
        if count or name in ("complete", "failed"):
            extra = ""
            if name == "pruned by the rules" and report.reasons:
                extra = (
                    " (" + ", ".join(f"{k} {v}" for k, v in sorted(report.reasons.items())) + ")"
                )
            rows.append((name, f"{count}{extra}"))
    if report.taught:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.taught.items()))
        rows.append(("unstable, found after finishing", f"{sum(report.taught.values())} ({kinds})"))
    rows.append(("compute", f"{report.epochs} epochs, {report.steps} optimizer steps"))
    share = report.unstable_steps / report.steps if report.steps else 0.0
    rows.append(("steps in unstable trials", f"{report.unstable_steps} ({share:.1%})"))
    return rows


def _budget_text(report: StudyReport) -> str:
    budget, steps = report.budget, report.step_budget
    if report.evaluation:
        return " (evaluation runs of a scheduler comparison)"
    if steps is not None:
        cap = f"; at most {budget} trials" if budget else ""
        return f" (a budget of {steps:,} optimizer steps{cap})"
    return f" of a budget of {budget}" if budget else ""


def _runs_or_trials(report: StudyReport) -> str:
    return "runs (one seed each)" if report.evaluation else "trials"


def _backends(report: StudyReport) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(report.backends.items())) or "-"


def _answer(report: StudyReport) -> list[tuple[str, str]]:
    best = report.best
    if best is None:
        return [("best", "no complete trial yet: nothing to show")]
    rows = [
        (f"best {report.metric}", f"{fmt(best.value)} (trial {best.number})"),
        ("scheduler", best.scheduler),
    ]
    for key, value in (("lr_min", best.lr_min), ("lr_max", best.lr_max)):
        if value is not None:
            rows.append((key, fmt(value)))
    if best.lr_center is not None:
        rows.append(("lr_center", fmt(best.lr_center)))
    if best.lr is not None:
        rows.append(("lr", fmt(best.lr)))
    rows.append(("copy", best.copy_line(report.epochs_per_trial)))
    return rows


def _comparison(report: StudyReport) -> tuple[list[str], list[list[str]]]:
    header = ["scheduler", "trials", "best", "mean (sd)", "trials to within 1%", "best config"]
    rows = []
    for row in report.schedulers:
        mean = "-" if row.mean is None else f"{row.mean:.4g}"
        if row.sd is not None:
            mean += f" ({row.sd:.2g})"
        config = (
            "-" if row.best_trial is None else row.best_trial.copy_line(report.epochs_per_trial)
        )
        rows.append(
            [row.scheduler, str(row.trials), fmt(row.best), mean, fmt(row.to_within_1pct), config]
        )
    return header, rows


def _top(report: StudyReport) -> tuple[list[str], list[list[str]]]:
    header = ["trial", report.metric, "scheduler", "lr_min", "lr_max", "lr_center", "lr"]
    rows = [
        [
            str(t.number),
            fmt(t.value),
            t.scheduler,
            fmt(t.lr_min),
            fmt(t.lr_max),
            fmt(t.lr_center),
            fmt(t.lr),
        ]
        for t in report.top()
    ]
    return header, rows


def _importance_rows(report: StudyReport) -> list[tuple[str, str]]:
    if report.importances is None:
        return []
    return [(name, f"{value:.3f}") for name, value in report.importances.items()]


# --- text -------------------------------------------------------------------------------------


def to_text(report: StudyReport) -> str:
    """The report's tables as plain text (``prl-tune summary`` and ``report --format text``);
    a comparison's evaluation study shows the comparison's table in place of its best run."""
    lines = _text_overview(report)
    if report.comparison is not None:
        table = format_comparison(report.comparison)
        lines += ["", *(f"  {line}".rstrip() for line in table.splitlines()), ""]
    elif report.best is None:
        lines.append("  no complete trial yet: nothing to show")
        return "\n".join(lines)
    else:
        lines += _text_answer(report, report.best)
    header, rows = _top(report)
    lines.append(f"  top {len(rows)} {_runs_or_trials(report)}:")
    lines.extend("    " + line for line in format_table(header, rows).splitlines())
    importances = _importance_rows(report)
    if importances:
        lines.append("  parameter importances: " + ", ".join(f"{k} {v}" for k, v in importances))
    else:
        lines.append(f"  {report.importance_note}")
    return "\n".join(lines)


def _text_overview(report: StudyReport) -> list[str]:
    lines = [f"study {report.study_name!r}: {len(report.trials)} trials"]
    if not report.made_by_prl_tune:
        lines.append("  (not made by prl-tune: showing what the store holds)")
    lines.append(f"  task: {report.task}; backend: {_backends(report)}")
    lines.append("  by state: " + ", ".join(f"{k} {v}" for k, v in sorted(report.states.items())))
    pruned = {
        "base": report.counts["pruned by the base pruner"],
        "memory": report.counts["pruned by the memory"],
        "rules": report.counts["pruned by the rules"],
    }
    if any(pruned.values()):
        lines.append("  pruned by: " + ", ".join(f"{k} {v}" for k, v in pruned.items() if v))
    compute = dict(_overview(report))
    if report.taught:
        lines.append(
            f"  unstable, found after finishing: {compute['unstable, found after finishing']}"
        )
    unstable = compute["steps in unstable trials"]
    lines.append(f"  compute: {compute['compute']}; in unstable trials: {unstable}")
    if report.step_budget is not None and not report.evaluation:
        lines.append(f"  step budget: {report.step_budget:,} optimizer steps")
    lines.extend(f"  {line}" for line in report.boundary)
    return lines


def _text_answer(report: StudyReport, best: TrialView) -> list[str]:
    lines = [
        f"  best {report.metric}: {fmt(best.value)} (trial {best.number})",
        f"  best scheduler: {best.scheduler}",
    ]
    for key, value in (
        ("lr_min", best.lr_min),
        ("lr_max", best.lr_max),
        ("lr_center", best.lr_center),
        ("lr", best.lr),
    ):
        if value is not None:
            lines.append(f"  best {key}: {fmt(value)}")
    lines.append(f"  copy: {best.copy_line(report.epochs_per_trial)}")
    if len(report.schedulers) > 1:
        lines.append("  schedulers:")
        lines.extend("    " + line for line in format_table(*_comparison(report)).splitlines())
    return lines


# --- Markdown ---------------------------------------------------------------------------------


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)
    return lines


def note_markdown(report: StudyReport) -> str:
    """The report's tables as Markdown, without figures (optuna-dashboard's study note)."""
    lines = [f"# Study `{report.study_name}`", ""]
    lines += [*_md_table(["", ""], [list(r) for r in _overview(report)]), ""]
    lines += [*(f"- {line}" for line in report.boundary), ""] if report.boundary else []
    if report.comparison is not None:
        lines += [comparison_markdown(report.comparison)]
    else:
        answer = [list(r) for r in _answer(report)]
        lines += ["## The answer", "", *_md_table(["", ""], answer), ""]
        if len(report.schedulers) > 1:
            lines += ["## Schedulers", "", *_md_table(*_comparison(report)), ""]
    header, rows = _top(report)
    if rows:
        lines += [f"## Top {_runs_or_trials(report)}", "", *_md_table(header, rows), ""]
    return "\n".join(lines)


def to_markdown(report: StudyReport, out: Path) -> str:
    """The report as Markdown; its figures are written as PNGs beside ``out``."""
    lines = [note_markdown(report)]
    found = figures(report)
    if not found and not figures_available():
        lines += [_NO_FIGURES, ""]
    for name, png in found.items():
        path = out.with_name(f"{out.stem}-{name}.png")
        path.write_bytes(png)
        lines += [f"![{name}]({path.name})", "", _CAPTIONS[name], ""]
    importances = _importance_rows(report)
    lines += ["## Parameter importances", ""]
    if importances:
        lines += _md_table(["parameter", "importance"], [list(r) for r in importances])
    else:
        lines.append(report.importance_note)
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f5f5f5}code{background:#f5f5f5;padding:.1em .3em}figure{margin:1em 0}
img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}.note{color:#555}
"""


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(header: list[str] | None, rows: list[list[str]]) -> str:
    head = "" if header is None else "<tr>" + "".join(f"<th>{_h(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def to_html(report: StudyReport) -> str:
    """The report as one self-contained HTML page (figures inlined as PNG; no script, no
    network). Every string from the store is escaped."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>prl-tune report: {_h(report.study_name)}</title><style>{_STYLE}</style></head>",
        f"<body><h1>Study <code>{_h(report.study_name)}</code></h1>",
    ]
    if not report.made_by_prl_tune:
        parts.append("<p class='note'>Not made by prl-tune: showing what the store holds.</p>")
    parts.append("<h2>Overview</h2>" + _html_table(None, [list(r) for r in _overview(report)]))
    parts.extend(f"<p>{_h(line)}</p>" for line in report.boundary)
    if report.comparison is not None:
        parts.append(comparison_html(report.comparison))
    else:
        answer = [list(r) for r in _answer(report)]
        parts.append("<h2>The answer</h2>" + _html_table(None, answer))
        if len(report.schedulers) > 1:
            parts.append("<h2>Schedulers</h2>" + _html_table(*_comparison(report)))
    header, rows = _top(report)
    if rows:
        parts.append(f"<h2>Top {_runs_or_trials(report)}</h2>" + _html_table(header, rows))
    found = figures(report)
    if not found and not figures_available():
        parts.append(f"<p class='note'>{_h(_NO_FIGURES)}</p>")
    for name, png in found.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure><img alt='{_h(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_h(_CAPTIONS[name])}</figcaption></figure>"
        )
    importances = _importance_rows(report)
    parts.append("<h2>Parameter importances</h2>")
    if importances:
        parts.append(_html_table(["parameter", "importance"], [list(r) for r in importances]))
    else:
        parts.append(f"<p class='note'>{_h(report.importance_note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
