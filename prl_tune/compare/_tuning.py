"""Tuning: one Optuna study per scheduler (and repeat), each run by the Optuna host's runner."""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO

import optuna
from optuna.trial import FrozenTrial, TrialState

from prl_tune.compare._plan import ComparisonPlan, say
from prl_tune.config import StudySpec
from prl_tune.store import counted_trials, create_or_resume, open_storage, steps_used, trial_steps


def tune_schedulers(
    plan: ComparisonPlan, *, stream: IO[str] | None = sys.stderr
) -> dict[tuple[str, int], optuna.Study]:
    """Run (or resume) every tuning study of ``plan``; returns them by ``(scheduler, repeat)``.

    Each scheduler is tuned in a study of its own (:meth:`ComparisonPlan.tuning_spec`), so its
    base pruner, divergence rules and unstable-range memory see its own trials only, with the
    same budget, sampler and seed as every other scheduler's. The budget is the same number of
    trials, or with ``budget = "steps"`` the same optimizer steps (``run_study``'s
    ``max_steps``). A finished study is not run again (a larger budget extends it); one that
    exists with another configuration is refused (``SpecError``), as
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
            study = _finished(plan, spec, storage) if spec.name in existing else None
            if study is not None:
                say(stream, f"[compare] tuning {place} {scheduler}: already done; {_line(study)}")
            else:
                say(
                    stream,
                    f"[compare] tuning {place} {scheduler}: study {spec.name!r}, "
                    f"{_budget(plan)}, seed {spec.seed}",
                )
                study = run_study(spec, max_steps=plan.step_budget, stream=stream)
                say(stream, f"[compare] tuned {place} {scheduler}: {_line(study)}")
            studies[(scheduler, repeat)] = study
    return studies


def _finished(
    plan: ComparisonPlan, spec: StudySpec, storage: optuna.storages.RDBStorage
) -> optuna.Study | None:
    """The stored study when it holds its budget (its trials, or its steps with ``budget =
    "steps"``) and nothing runs (its configuration checked)."""
    study = create_or_resume(spec, storage)
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):
        return None
    if counted_trials(study) >= spec.n_trials:
        return study
    if plan.step_budget is not None and steps_used(trials) >= plan.step_budget:
        return study
    return None


def _budget(plan: ComparisonPlan) -> str:
    """A tuning study's budget in words."""
    if plan.step_budget is None:
        return f"{plan.tuning_trials} trials"
    return f"{plan.step_budget:,} optimizer steps (at most {plan.tuning_trials} trials)"


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's best trial by its metric (a feasible, complete one), or ``None``."""
    try:
        return study.best_trial
    except ValueError:  # no complete (feasible) trial
        return None


def tuning_steps(study: optuna.Study) -> int:
    """Optimizer steps the study spent, pruned and stopped trials included."""
    return sum(trial_steps(t) for t in study.get_trials(deepcopy=False))


def _line(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    by_state = ", ".join(f"{name} {count}" for name, count in sorted(states.items()))
    best = best_trial(study)
    best_text = "no complete trial" if best is None else f"best {best.value:.4g} (#{best.number})"
    return f"{len(trials)} trials ({by_state}), {best_text}, {tuning_steps(study)} steps"
