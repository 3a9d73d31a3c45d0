"""Terminal views of a study, built on Optuna's public API only (whichever backend wrote it)."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from prl_tune.report._model import build_report
from prl_tune.report._render import to_text
from prl_tune.report._text import fmt, format_table
from prl_tune.store import steps_used, trial_steps, uses_budget

if TYPE_CHECKING:
    from prl_tune.lr_finder import RangeTestResult

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _schedule(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    name = attrs.get("scheduler", "plrs")
    if "lr_min" in attrs:
        return f"{name} lr_min={fmt(attrs['lr_min'])} lr_max={fmt(attrs['lr_max'])}"
    if "lr" in attrs:
        return f"{name} lr={fmt(attrs['lr'])}"
    return name


class Progress:
    """Prints a line per finished trial: n/N, its result, the best so far, elapsed and ETA.

    Args:
        total: the study's trial budget.
        direction: the study's direction (for "best").
        stream: where to print; ``None`` prints nothing.
        workers: trials run at once (for the ETA).
        max_steps: the study's budget in optimizer steps, if it has one: each line then counts
            the steps run (``[1,234/5,440 steps]``) and the ETA is in steps.
    """

    def __init__(
        self,
        total: int,
        direction: StudyDirection,
        *,
        stream: IO[str] | None,
        workers: int = 1,
        max_steps: int | None = None,
    ) -> None:
        self.total = total
        self.direction = direction
        self.stream = stream
        self.workers = workers
        self.max_steps = max_steps
        self._seen: set[int] = set()
        self._started = time.monotonic()
        self._durations: list[float] = []
        self._steps: list[int] = []  # of the trials in _durations

    def start(self, study: optuna.Study) -> None:
        """Note the trials already finished (a resumed study) so only new ones are printed."""
        done = [t for t in study.get_trials(deepcopy=False) if t.state in _FINISHED]
        self._seen = {t.number for t in done}
        if self.stream is not None:
            verb = "resuming" if done else "starting"
            counted = sum(uses_budget(t) for t in done)
            steps = ""
            if self.max_steps is not None:
                steps = f", {steps_used(done):,}/{self.max_steps:,} optimizer steps"
            print(
                f"{verb} study {study.study_name!r}: {counted}/{self.total} trials done"
                f"{steps}, {self.workers} worker(s)",
                file=self.stream,
                flush=True,
            )

    def update(self, study: optuna.Study) -> None:
        """Print the trials that finished since the last call."""
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in _FINISHED]
        new = sorted((t for t in finished if t.number not in self._seen), key=lambda t: t.number)
        if not new:
            return
        for trial in new:
            self._seen.add(trial.number)
            if trial.duration is not None:
                self._durations.append(trial.duration.total_seconds())
                self._steps.append(trial_steps(trial))
        if self.stream is None:
            return
        best = _best(trials, self.direction)
        done = sum(uses_budget(t) for t in finished)  # a trial to be re-run is not done
        elapsed = time.monotonic() - self._started
        remaining = max(0, self.total - done)
        per_trial = sum(self._durations) / len(self._durations) if self._durations else 0.0
        eta = remaining * per_trial / max(1, self.workers)
        count = f"{done:>{len(str(self.total))}}/{self.total}"
        if self.max_steps is not None:
            ran = steps_used(finished)
            count = f"{ran:>{len(f'{self.max_steps:,}')},}/{self.max_steps:,} steps"
            per_step = sum(self._durations) / max(1, sum(self._steps))
            eta = min(eta, max(0, self.max_steps - ran) * per_step / max(1, self.workers))
        for trial in new:
            result = fmt(trial.value) if trial.state == TrialState.COMPLETE else ""
            attrs = trial.user_attrs
            why = attrs.get("prune_reason") or attrs.get("error") or attrs.get("fail_reason") or ""
            best_text = f"best {fmt(best.value)} (#{best.number})" if best else "best -"
            print(
                f"[{count}] trial {trial.number} "
                f"{trial.state.name} {result} {_schedule(trial)}"
                f"{' (' + str(why)[:120] + ')' if why else ''} | {best_text} | "
                f"{_fmt_duration(elapsed)} elapsed, ETA {_fmt_duration(eta)}",
                file=self.stream,
                flush=True,
            )


def _best(trials: list[FrozenTrial], direction: StudyDirection) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if direction == StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]


def format_summary(study: optuna.Study) -> str:
    """The study's report as text (the same as ``prl-tune report --format text``)."""
    return to_text(build_report(study))


def format_range_test(result: RangeTestResult, *, rows: int = 12) -> str:
    """The range test as text: the curve at ``rows`` points and the suggestions."""
    n = len(result.lrs)
    picks = sorted({round(i * (n - 1) / max(1, rows - 1)) for i in range(rows)})
    table = format_table(
        ["lr", "smoothed loss"],
        [[fmt(result.lrs[i]), fmt(result.losses[i])] for i in picks],
    )
    lines = [table, ""]
    lines.append(f"suggested lr_max: {fmt(result.suggested_lr_max)}")
    lines.append(f"suggested lr_min: {fmt(result.suggested_lr_min)}")
    lines.append(f"minimum loss at lr {fmt(result.min_loss_lr)}")
    lines.append(f"steepest descent at lr {fmt(result.steepest_lr)}")
    diverged = "-" if result.diverged_lr is None else fmt(result.diverged_lr)
    lines.append(f"diverged at lr {diverged}")
    return "\n".join(lines)
