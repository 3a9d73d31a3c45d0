"""The comparison table as terminal text and as Markdown (the same cells, the same notes)."""

from __future__ import annotations

from prl_tune.compare._table import CONFIDENCE, ComparisonTable, SchedulerResult, best_score
from prl_tune.report import format_table


def format_comparison(table: ComparisonTable) -> str:
    """The table for a terminal: a heading line, the fixed-width table and its notes."""
    header, rows = _cells(table)
    notes = [f"{label}: {text}" for label, text in _notes(table)]
    return "\n".join([_title(table), "", format_table(header, rows), "", *notes])


def comparison_markdown(table: ComparisonTable) -> str:
    """The table as Markdown: a heading, the table and its notes as a list."""
    header, rows = _cells(table)
    lines = [
        f"## {_title(table)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
        "",
        *(f"- **{label}**: {text}" for label, text in _notes(table)),
    ]
    return "\n".join(lines) + "\n"


def score_label(table: ComparisonTable) -> str:
    """What the scores are, in words: ``"test accuracy"``, or the metric on validation."""
    if table.scored_on == "test":
        return table.score.replace("_", " ")
    return f"{table.metric} (validation)"


def _title(table: ComparisonTable) -> str:
    studies = len(table.tuning_seeds)
    return (
        f"Scheduler comparison '{table.study}': {len(table.rows)} schedulers x {table.trials} "
        f"tuning trials x {studies} tuning {'study' if studies == 1 else 'studies'}, the best "
        f"of each re-trained with {len(table.seeds)} fresh seeds, {table.epochs} epochs"
    )


def _cells(table: ComparisonTable) -> tuple[list[str], list[list[str]]]:
    label = score_label(table)
    several = len(table.tuning_seeds) > 1
    header = [
        "scheduler",
        "tuning trials (finished/total)",
        f"tuning best ({table.metric})",
        f"{label} mean ± sd",
        f"{label} best",
        "runs",
        *(["mean per tuning study"] if several else []),
        f"difference to {table.baseline}, {CONFIDENCE:.0%} CI",
        "steps: tuning",
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
                f"{row.tuning_steps:,}",
                f"{row.evaluation_steps:,}",
                " / ".join("-" if n is None else str(n) for n in row.trials_to_within),
            ]
        )
    return header, rows


def _notes(table: ComparisonTable) -> list[tuple[str, str]]:
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
    pruner = "no base pruner" if table.pruner == "none" else f"base pruner {table.pruner}"
    notes = [
        ("scores", scores),
        (
            "tuning",
            f"each scheduler in its own Optuna study (so its {pruner}, the divergence rules and "
            f"the unstable-range memory see its own trials only), {table.trials} trials, sampler "
            f"{table.sampler}, seed {tuning_seeds}; 'tuning best' is the best {table.metric} of "
            "each tuning study; steps count every trial, pruned ones included.",
        ),
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
                f"{env.get('optuna')}, Python {env.get('python')}, device {env.get('device')}",
            )
        )
    return notes


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
