"""Tuning: one Optuna study per scheduler (and repeat), each run by the Optuna host's runner."""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO

import optuna
from optuna.trial import FrozenTrial, TrialState

from prl_tune.compare._plan import ComparisonPlan, say
from prl_tune.config import StudySpec
from prl_tune.store import counted_trials, create_or_resume, open_storage


def tune_schedulers(
    plan: ComparisonPlan, *, stream: IO[str] | None = sys.stderr
) -> dict[tuple[str, int], optuna.Study]:
    """Run (or resume) every tuning study of ``plan``; returns them by ``(scheduler, repeat)``.

    Each scheduler is tuned in a study of its own (:meth:`ComparisonPlan.tuning_spec`), so its
    base pruner, divergence rules and unstable-range memory see its own trials only, with the
    same budget, sampler and seed as every other scheduler's. A finished study is not run again;
    one that exists with another configuration is refused (``SpecError``), as
    :func:`prl_tune.hosts.optuna.run_study` refuses it.
    """
    from prl_tune.hosts.optuna import run_study

    storage = open_storage(plan.spec.storage)
    existing = set(optuna.get_all_study_names(storage))
    total = len(plan.schedulers) * plan.studies
    studies: dict[tuple[str, int], optuna.Study] = {}
    for repeat in range(plan.studies):
        for index, scheduler in enumerate(plan.schedulers):
            place = f"{repeat * len(plan.schedulers) + index + 1}/{total}"
            spec = plan.tuning_spec(scheduler, repeat)
            study = _finished(spec, storage) if spec.name in existing else None
            if study is not None:
                say(stream, f"[compare] tuning {place} {scheduler}: already done; {_line(study)}")
            else:
                say(
                    stream,
                    f"[compare] tuning {place} {scheduler}: study {spec.name!r}, "
                    f"{spec.n_trials} trials, seed {spec.seed}",
                )
                study = run_study(spec, stream=stream)
                say(stream, f"[compare] tuned {place} {scheduler}: {_line(study)}")
            studies[(scheduler, repeat)] = study
    return studies


def _finished(spec: StudySpec, storage: optuna.storages.RDBStorage) -> optuna.Study | None:
    """The stored study when it holds its budget and nothing runs (its configuration checked)."""
    study = create_or_resume(spec, storage)
    trials = study.get_trials(deepcopy=False)
    if counted_trials(study) < spec.n_trials or any(t.state == TrialState.RUNNING for t in trials):
        return None
    return study


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best trial by its metric (a feasible, complete one), or ``None``."""
    try:
        return study.best_trial
    except ValueError:  # no complete (feasible) trial
        return None


def tuning_steps(study: optuna.Study) -> int:
    """Optimizer steps the study spent, pruned and stopped trials included."""
    steps = (t.user_attrs.get("steps") for t in study.get_trials(deepcopy=False))
    return sum(s for s in steps if isinstance(s, int) and not isinstance(s, bool))


def _line(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    by_state = ", ".join(f"{name} {count}" for name, count in sorted(states.items()))
    best = best_trial(study)
    best_text = "no complete trial" if best is None else f"best {best.value:.4g} (#{best.number})"
    return f"{len(trials)} trials ({by_state}), {best_text}, {tuning_steps(study)} steps"
