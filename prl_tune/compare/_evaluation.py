"""Evaluation: each scheduler's best tuning configuration re-trained with fresh seeds, full
epochs and no pruning, scored on the test split; every run a trial of the evaluation study."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from prl_tune._version import __version__
from prl_tune.compare._plan import ComparisonPlan, say
from prl_tune.compare._tuning import best_trial
from prl_tune.config import StudySpec, objective_value, train_trial
from prl_tune.report import TEST_METRICS, fmt
from prl_tune.space import SchedulerSpace
from prl_tune.stability import StopRecord
from prl_tune.store import create_or_resume, json_float, resolve_lr_max, stop_attrs
from prl_tune.training import cpu_threads

#: Study user attribute of the evaluation study: the environments that ran the comparison.
ENVIRONMENT_ATTR = "prl_tune.environments"
#: The evaluation states that count as done (a FAIL, e.g. a task that raised, is run again).
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def environment(spec: StudySpec) -> dict[str, str]:
    """The versions of prl_tune, torch, optuna and Python, the device the runs use, and the
    torch CPU threads of each run (on a CPU the thread count changes the results a little)."""
    import torch

    from prl_tune.training import select_device

    try:
        device = str(select_device(spec.task.device))
    except ValueError:
        device = spec.task.device
    return {
        "prl_tune": __version__,
        "torch": str(torch.__version__),
        "optuna": optuna.__version__,
        "python": platform.python_version(),
        "device": device,
        "threads": str(spec.threads),
    }


def run_key(attrs: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies an evaluation run: its scheduler, repeat, seed and tuned configuration."""
    return (
        attrs.get("scheduler"),
        attrs.get("repeat"),
        attrs.get("seed"),
        attrs.get("tuning_study"),
        attrs.get("tuning_trial"),
    )


def evaluate_schedulers(
    plan: ComparisonPlan,
    tuned: dict[tuple[str, int], optuna.Study],
    *,
    stream: IO[str] | None = sys.stderr,
) -> optuna.Study:
    """Re-train each tuning study's best configuration with every evaluation seed; returns the
    evaluation study. Runs already stored are skipped, so a re-run does only what is missing."""
    study = create_or_resume(plan.evaluation_spec())
    _record_environment(study, environment(plan.spec))
    done = {run_key(t.user_attrs) for t in study.get_trials(deepcopy=False, states=DONE_STATES)}
    total = len(tuned) * len(plan.seeds)
    count = ran = 0
    for (scheduler, repeat), tuning in tuned.items():
        best = best_trial(tuning)
        if best is None:
            count += len(plan.seeds)
            say(
                stream,
                f"[compare] evaluation: {scheduler} (study {repeat}) has no complete tuning "
                "trial; nothing to evaluate",
            )
            continue
        spec = resolve_lr_max(tuning, plan.tuning_spec(scheduler, repeat))
        for seed in plan.seeds:
            count += 1
            attrs = {
                "scheduler": scheduler,
                "repeat": repeat,
                "seed": seed,
                "tuning_study": tuning.study_name,
                "tuning_trial": best.number,
            }
            if run_key(attrs) in done:
                continue
            with cpu_threads(plan.spec.threads):
                trial = _evaluate(plan, spec, best, attrs)
            study.add_trial(trial)
            ran += 1
            say(stream, f"[compare] evaluation {count}/{total} {scheduler}: {_line(plan, trial)}")
    say(stream, f"[compare] evaluation: {ran} runs now, {total - ran} stored before or skipped")
    return study


def _evaluate(
    plan: ComparisonPlan, spec: StudySpec, best: FrozenTrial, attrs: dict[str, Any]
) -> FrozenTrial:
    """One evaluation run, as a finished trial to add to the evaluation study."""
    if not isinstance(spec.space, SchedulerSpace):  # resolve_lr_max gave a concrete space
        raise TypeError("the tuning spec's space must be resolved.")
    fixed = optuna.trial.FixedTrial(dict(best.params))
    config = spec.space.suggest(fixed)  # the tuned configuration, decoded as in tuning
    run = ComparisonPlan.run_spec(spec, int(attrs["seed"]))
    started = time.perf_counter()
    try:
        result = train_trial(run, config, evaluate_test=True)
    except Exception as exc:  # the user's task raised: recorded, run again next time
        return optuna.trial.create_trial(
            state=TrialState.FAIL,
            params=dict(best.params),
            distributions=dict(best.distributions),
            user_attrs={**fixed.user_attrs, **attrs, "error": f"{type(exc).__name__}: {exc}"},
        )
    test = getattr(result, TEST_METRICS[plan.spec.metric])
    val = objective_value(run, result)
    attrs = {
        **fixed.user_attrs,
        **attrs,
        "tuning_value": best.value,
        "scored_on": None if result.diverged else "validation" if test is None else "test",
        "test_score": None if test is None else json_float(test),
        "val_score": json_float(val),
        "test_loss": None if result.test_loss is None else json_float(result.test_loss),
        "test_accuracy": None if result.test_accuracy is None else json_float(result.test_accuracy),
        "steps": result.steps,
        "epochs": len(result.history),
        "seconds": round(time.perf_counter() - started, 3),
        "history": [{k: json_float(v) for k, v in m.as_dict().items()} for m in result.history],
    }
    score = val if test is None else test
    if result.diverged or score != score:  # stopped as non-finite, or nothing to rank
        stop = StopRecord(
            "rules",
            result.reason or "non-finite score",
            result.instability or "non-finite",
            result.diverged_at_step,
        )
        return optuna.trial.create_trial(
            state=TrialState.PRUNED,
            params=dict(best.params),
            distributions=dict(best.distributions),
            user_attrs={**attrs, **stop_attrs(stop)},
        )
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        value=float(score),
        params=dict(best.params),
        distributions=dict(best.distributions),
        user_attrs=attrs,
    )


def _record_environment(study: optuna.Study, current: dict[str, str]) -> None:
    """Add ``current`` to the study's environments when it is new."""
    known = list(study.user_attrs.get(ENVIRONMENT_ATTR, []))
    if current not in known:
        study.set_user_attr(ENVIRONMENT_ATTR, [*known, current])


def runs_of(study: optuna.Study) -> Iterable[FrozenTrial]:
    """The evaluation runs that are done, one per run key (the first stored wins)."""
    seen: set[tuple[Any, ...]] = set()
    for trial in study.get_trials(deepcopy=False, states=DONE_STATES):
        key = run_key(trial.user_attrs)
        if key not in seen:
            seen.add(key)
            yield trial


def _line(plan: ComparisonPlan, trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    head = f"study {attrs['repeat']}, seed {attrs['seed']}"
    if trial.state == TrialState.FAIL:
        return f"{head}: failed ({attrs['error']}); run again by the next compare"
    if trial.state != TrialState.COMPLETE:
        return f"{head}: stopped ({attrs['prune_reason']}), {attrs['steps']} steps"
    label = (
        TEST_METRICS[plan.spec.metric].replace("_", " ")
        if attrs["scored_on"] == "test"
        else f"{plan.spec.metric} (no test split)"
    )
    return (
        f"{head}: {label} {fmt(trial.value)}, {plan.spec.metric} {fmt(attrs['val_score'])}, "
        f"{attrs['steps']} steps, {attrs['seconds']:.1f} s"
    )
