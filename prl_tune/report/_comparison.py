"""The table of a scheduler comparison (``prl-tune compare``) as stored on its evaluation study,
and its text, Markdown and HTML forms.

``prl_tune.compare`` builds the table and stores it (:data:`TABLE_ATTR`); reports read it back
(:func:`stored_table`) and render it. It lives here, below both, so the report layer never
imports the comparison that runs studies.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import optuna

from prl_tune.report._text import format_table

#: Study user attribute of the evaluation study that holds the table (:meth:`ComparisonTable.
#: to_dict`), for reports to render.
TABLE_ATTR = "prl_tune.comparison"
#: The confidence level of the intervals.
CONFIDENCE = 0.95
#: The test metric that stands for each study metric.
TEST_METRICS = {"val_accuracy": "test_accuracy", "val_loss": "test_loss", "train_loss": "test_loss"}


@dataclass(frozen=True)
class SchedulerResult:
    """One scheduler's row of the table.

    Args:
        scheduler: its name.
        tuning_finished: its tuning trials that completed (over every tuning study).
        tuning_trials: its tuning trials in any state (pruned and failed ones too).
        tuning_best: the best tuning value (validation) of each tuning study (``None``: no
            complete trial).
        trials_to_within: for each tuning study, the trials it took (in order, pruned ones
            counted) to reach within 1% of that study's own best.
        tuning_steps: optimizer steps of every tuning trial, pruned and stopped ones included.
        scores: the scores of its evaluation runs (by tuning study, then seed); runs stopped as
            non-finite have none.
        study_means: the mean score of each tuning study's configuration.
        runs: evaluation runs done; ``runs - len(scores)`` were stopped as non-finite.
        runs_planned: evaluation runs the protocol asks for (seeds x studies with a best).
        evaluation_steps: optimizer steps of its evaluation runs.
        ci: the confidence interval of ``mean(scores) - mean(baseline's scores)`` (Welch's t),
            ``None`` for the baseline and where it cannot be computed.
        verdict: ``"baseline"``, ``"no significant difference"``, ``"better than X"``,
            ``"worse than X"``, or ``"n/a: ..."`` saying why there is no interval.
        study_steps: the steps each tuning study used of its budget (the trials that use it:
            complete, pruned, and failed by their own code).
    """

    scheduler: str
    tuning_finished: int
    tuning_trials: int
    tuning_best: tuple[float | None, ...]
    trials_to_within: tuple[int | None, ...]
    tuning_steps: int
    scores: tuple[float, ...]
    study_means: tuple[float | None, ...]
    runs: int
    runs_planned: int
    evaluation_steps: int
    ci: tuple[float, float] | None
    verdict: str
    study_steps: tuple[int, ...] = ()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None


@dataclass(frozen=True)
class ComparisonTable:
    """The table of a comparison and what it rests on; ``prl_tune.compare.build_table`` builds
    it, and :meth:`to_dict` / :meth:`from_dict` store it on the evaluation study
    (:data:`TABLE_ATTR`).

    Args:
        study: the study's name.
        metric: the study's metric (what tuning selected by), and ``direction`` its direction.
        score: what the evaluation runs are scored by: ``"test_accuracy"`` or ``"test_loss"``
            on a test split, else the study's metric on the validation split.
        scored_on: ``"test"``, ``"validation"`` (the task has no test split) or ``"none"``
            (no evaluation run yet).
        baseline: the scheduler the intervals compare against.
        trials: tuning trials per scheduler and tuning study (``budget = "steps"``: the full
            trials the step budget stands for, when it is not set in steps).
        tuning_seeds: the tuning studies' seeds; ``seeds`` the evaluation seeds.
        epochs: epochs of every run.
        sampler: the tuning sampler; ``pruner`` the base pruner each scheduler's study has.
        test_fraction: the share of samples in a built-in task's test split (``None``: a user
            task's own split, if any).
        rows: one :class:`SchedulerResult` per scheduler, in the order of ``[space]``.
        environments: the versions and device of each run of the comparison.
        budget: what each tuning study got the same of: ``"trials"`` or ``"steps"``.
        step_budget: with ``budget = "steps"``, the optimizer steps of each tuning study.
        trial_steps: the steps of one full trial (epochs x batches per epoch), when known.
        trial_cap: with ``budget = "steps"``, the most trials a tuning study may run.
    """

    study: str
    metric: str
    direction: str
    score: str
    scored_on: str
    baseline: str
    trials: int
    tuning_seeds: tuple[int, ...]
    seeds: tuple[int, ...]
    epochs: int
    sampler: str
    pruner: str
    test_fraction: float | None
    rows: tuple[SchedulerResult, ...]
    environments: tuple[dict[str, str], ...] = field(default=())
    budget: str = "trials"
    step_budget: int | None = None
    trial_steps: int | None = None
    trial_cap: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (rows as dicts, with their mean, sd and best)."""
        data = asdict(self)
        for row, result in zip(data["rows"], self.rows, strict=True):
            row.update(mean=result.mean, sd=result.sd, best=best_score(result, self.direction))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonTable:
        """The table :meth:`to_dict` gave (e.g. read back from the store; a table stored
        before a field existed gets its default)."""
        known = {f.name for f in fields(SchedulerResult)}
        values = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        rows = []
        for row in values.pop("rows"):
            cells = {k: v for k, v in row.items() if k in known}
            for key in ("tuning_best", "trials_to_within", "scores", "study_means", "study_steps"):
                cells[key] = tuple(cells.get(key, ()))
            cells["ci"] = None if cells["ci"] is None else tuple(cells["ci"])
            rows.append(SchedulerResult(**cells))
        for key in ("tuning_seeds", "seeds", "environments"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values, rows=tuple(rows))

    def row(self, scheduler: str) -> SchedulerResult:
        return next(r for r in self.rows if r.scheduler == scheduler)


def best_score(row: SchedulerResult, direction: str) -> float | None:
    """The best of a row's scores."""
    if not row.scores:
        return None
    return max(row.scores) if direction == "maximize" else min(row.scores)


def stored_table(study: optuna.Study) -> ComparisonTable | None:
    """The table a comparison stored on its evaluation study, if any."""
    data = study.user_attrs.get(TABLE_ATTR)
    return None if not isinstance(data, Mapping) else ComparisonTable.from_dict(data)


# --- the three forms: the same title, cells and notes -----------------------------------------


def format_comparison(table: ComparisonTable) -> str:
    """The table for a terminal: a heading line, the fixed-width table and its notes."""
    header, rows = comparison_cells(table)
    notes = [f"{label}: {text}" for label, text in comparison_notes(table)]
    return "\n".join([comparison_title(table), "", format_table(header, rows), "", *notes])


def comparison_markdown(table: ComparisonTable, *, level: int = 2) -> str:
    """The table as Markdown: a heading (``level`` ``#``), the table and its notes as a list."""
    header, rows = comparison_cells(table)
    lines = [
        f"{'#' * level} {comparison_title(table)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
        "",
        *(f"- **{label}**: {text}" for label, text in comparison_notes(table)),
    ]
    return "\n".join(lines) + "\n"


def comparison_html(table: ComparisonTable) -> str:
    """The table as an HTML fragment (a heading, the table, its notes); every string escaped."""

    def h(text: object) -> str:
        return html.escape(str(text), quote=True)

    header, rows = comparison_cells(table)
    head = "<tr>" + "".join(f"<th>{h(cell)}</th>" for cell in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in rows)
    notes = "".join(
        f"<li><strong>{h(label)}</strong>: {h(text)}</li>"
        for label, text in comparison_notes(table)
    )
    return (
        f"<h2>{h(comparison_title(table))}</h2><table class='comparison'>{head}{body}</table>"
        f"<ul class='note'>{notes}</ul>"
    )


def score_label(table: ComparisonTable) -> str:
    """What the scores are, in words: ``"test accuracy"``, or the metric on validation."""
    if table.scored_on == "test":
        return table.score.replace("_", " ")
    return f"{table.metric} (validation)"


def comparison_title(table: ComparisonTable) -> str:
    studies = len(table.tuning_seeds)
    if table.budget == "steps":
        effort = f"{table.step_budget or 0:,} tuning steps"
    else:
        effort = f"{table.trials} tuning trials"
    return (
        f"Scheduler comparison '{table.study}': {len(table.rows)} schedulers x {effort} x "
        f"{studies} tuning {'study' if studies == 1 else 'studies'}, the best of each "
        f"re-trained with {len(table.seeds)} fresh seeds, {table.epochs} epochs"
    )


def comparison_cells(table: ComparisonTable) -> tuple[list[str], list[list[str]]]:
    """The header and the rows, as strings."""
    label = score_label(table)
    several = len(table.tuning_seeds) > 1
    steps_mode = table.budget == "steps"
    header = [
        "scheduler",
        "tuning trials (finished/total)",
        f"tuning best ({table.metric})",
        f"{label} mean ± sd",
        f"{label} best",
        "runs",
        *(["mean per tuning study"] if several else []),
        f"difference to {table.baseline}, {CONFIDENCE:.0%} CI",
        f"steps: tuning (budget {table.step_budget or 0:,})" if steps_mode else "steps: tuning",
        "steps: evaluation",
        "trials to within 1% of own best",
    ]
    rows = []
    for row in table.rows:
        rows.append(
            [
                f"{row.scheduler} (baseline)" if row.scheduler == table.baseline else row.scheduler,
                f"{row.tuning_finished}/{row.tuning_trials}",
                _each(row.tuning_best),
                _mean_sd(row),
                _score(best_score(row, table.direction)),
                _runs(row),
                *([_each(row.study_means)] if several else []),
                _interval(row),
                _budget_steps(table, row) if steps_mode else f"{row.tuning_steps:,}",
                f"{row.evaluation_steps:,}",
                " / ".join("-" if n is None else str(n) for n in row.trials_to_within),
            ]
        )
    return header, rows


def comparison_notes(table: ComparisonTable) -> list[tuple[str, str]]:
    """The notes under the table, as (label, text)."""
    label = score_label(table)
    if table.scored_on == "test":
        where = (
            f"{table.test_fraction:.0%} of the samples"
            if table.test_fraction is not None
            else "the task's own test_loader"
        )
        scores = (
            f"{label} of the final model on a held-out test split ({where}); no tuning trial "
            "ever evaluated it, and nothing was selected by it."
        )
    elif table.scored_on == "validation":
        scores = (
            f"{table.metric} on the VALIDATION split: the task returns no test_loader, so these "
            "are validation scores, on the split that also selected each configuration "
            "(optimistically biased)."
        )
    else:
        scores = "no evaluation run is stored yet."
    seeds = ", ".join(str(s) for s in table.seeds)
    tuning_seeds = ", ".join(str(s) for s in table.tuning_seeds)
    pruner = "" if table.pruner == "none" else f"its base pruner {table.pruner}, "
    notes = [
        ("scores", scores),
        (
            "tuning",
            f"each scheduler in its own Optuna study (so {pruner}the divergence rules and "
            f"the unstable-range memory see its own trials only), {_effort(table)}, sampler "
            f"{table.sampler}, seed {tuning_seeds}; 'tuning best' is the best {table.metric} of "
            "each tuning study; steps count every trial, pruned ones included.",
        ),
    ]
    if table.budget == "steps":
        notes.append(("steps", _steps_note(table)))
    notes += [
        (
            "evaluation",
            f"each tuning study's best configuration re-trained with seeds {seeds} (none of them "
            f"a tuning seed), {table.epochs} epochs, no pruning; a run stopped as non-finite has "
            "no score ('runs' says how many scored).",
        ),
        (
            "CI",
            f"Welch's t interval ({CONFIDENCE:.0%}) for the mean {label} minus "
            f"{table.baseline}'s, over the seeds (pooled over tuning studies); when it contains "
            "0 there is no significant difference.",
        ),
    ]
    for env in table.environments:
        notes.append(
            (
                "environment",
                f"prl_tune {env.get('prl_tune')}, torch {env.get('torch')}, optuna "
                f"{env.get('optuna')}, Python {env.get('python')}, device {env.get('device')}"
                + (f", torch CPU threads per run {env['threads']}" if "threads" in env else ""),
            )
        )
    return notes


def _effort(table: ComparisonTable) -> str:
    if table.budget != "steps":
        return f"{table.trials} trials"
    return f"a budget of {table.step_budget or 0:,} optimizer steps"


def _steps_note(table: ComparisonTable) -> str:
    budget = table.step_budget or 0
    if table.trial_steps:
        full = budget / table.trial_steps
        worth = (
            f" (what {table.trials} full trials of {table.trial_steps:,} steps cost)"
            if budget == table.trials * table.trial_steps
            else f" ({full:.3g} full trials of {table.trial_steps:,} steps)"
        )
    else:
        worth = ""
    cap = f"; a study also ends at {table.trial_cap} trials" if table.trial_cap else ""
    return (
        f"every tuning study got {budget:,} optimizer steps{worth}: it starts trials while its "
        "finished trials' steps (pruned and stopped ones at the steps they ran) plus a full "
        "trial for each running one are below the budget, and the last trial, which crosses "
        "it, finishes; '+N' is that overshoot (less than one trial's steps), '-N' a study that "
        f"ended short of its budget{cap}."
    )


def _budget_steps(table: ComparisonTable, row: SchedulerResult) -> str:
    budget = table.step_budget or 0
    return " / ".join(f"{used:,} ({used - budget:+,})" for used in row.study_steps) or "-"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _each(values: tuple[float | None, ...]) -> str:
    return " / ".join(_score(v) for v in values)


def _mean_sd(row: SchedulerResult) -> str:
    if row.mean is None:
        return "-"
    return _score(row.mean) if row.sd is None else f"{row.mean:.4f} ± {row.sd:.4f}"


def _runs(row: SchedulerResult) -> str:
    text = f"{len(row.scores)}/{row.runs_planned}"
    stopped = row.runs - len(row.scores)
    return f"{text} ({stopped} stopped)" if stopped else text


def _interval(row: SchedulerResult) -> str:
    if row.ci is None:
        return row.verdict
    low, high = row.ci
    return f"[{low:+.4f}, {high:+.4f}] {row.verdict}"
