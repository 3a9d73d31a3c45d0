"""What both hosts' runners do the same way before their trials start."""

from __future__ import annotations

import math
from typing import IO, Any

import optuna

from prl_tune.config import StudySpec, run_range_test
from prl_tune.schedulers import SCHEDULERS
from prl_tune.space import PendingRangeTest, SchedulerSpace
from prl_tune.store import SPEC_ATTR, record_range_test, resolve_lr_max, stored_range_test

#: Study user attribute: the warm start's enqueued parameters (set once per study).
WARM_START_ATTR = "prl_tune.warm_start"
#: Study user attribute: the warm start's ``lr_max`` centre, ``min_loss_lr`` over the divisor
#: (set once per study, so the window stays the same whatever a later version's divisor is).
WARM_CENTRE_ATTR = "prl_tune.warm_start_centre"
#: ``[space] warm_start = "range-test"``: one first trial per factor ``f``, with ``lr_max`` the
#: range test's loss-minimizing LR over ``f x`` :func:`warm_start_divisor` and
#: ``lr_min = WARM_START_RATIO x lr_max`` (README, "The warm start"; the measurements are in
#: benchmarks/README.md, "Compute to a good configuration").
WARM_START_FACTORS = (1.0, 2.0)
WARM_START_RATIO = 0.7
#: :func:`warm_start_divisor` for AdamW (measured, as the others: README, "The warm start").
ADAMW_DIVISOR = 16.0


def warm_start_divisor(spec: StudySpec) -> float:
    """How far below the range test's loss-minimizing LR the first trial's ``lr_max`` is. SGD:
    4 (the test's own ``suggested_lr_max``, chosen on plain SGD), times ``1 / sqrt(1 - m)``
    with momentum ``m`` (heavy-ball steps grow towards ``lr / (1 - m)``, more than the test's
    short ramp lets them; 12.6 for ``m = 0.9``). AdamW: :data:`ADAMW_DIVISOR`."""
    if spec.optimizer.name == "adamw":
        return ADAMW_DIVISOR
    return 4.0 / math.sqrt(1.0 - spec.optimizer.momentum)


def _legacy_divisor(spec: StudySpec) -> float:
    """The divisor of the prl_tune versions that recorded no centre (AdamW: 4)."""
    momentum = spec.optimizer.momentum if spec.optimizer.name == "sgd" else 0.0
    return 4.0 / math.sqrt(1.0 - momentum)


def _warm_centre(study: optuna.Study, spec: StudySpec, min_loss_lr: float) -> float:
    """The study's recorded centre; for a study whose warm start ran before centres were
    recorded, the divisor it ran with; else a new centre, recorded."""
    recorded = study.user_attrs.get(WARM_CENTRE_ATTR)
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        return float(recorded)
    if WARM_START_ATTR in study.user_attrs:
        return min_loss_lr / _legacy_divisor(spec)
    centre = min_loss_lr / warm_start_divisor(spec)
    study.set_user_attr(WARM_CENTRE_ATTR, centre)
    return centre


def with_overrides(spec: StudySpec, **overrides: Any) -> StudySpec:
    """``spec`` with the ``[study]`` fields that are not ``None`` in ``overrides`` changed."""
    changes = {key: value for key, value in overrides.items() if value is not None}
    return spec.with_study(**changes) if changes else spec


def resolve_space(study: optuna.Study, spec: StudySpec, stream: IO[str] | None) -> StudySpec:
    """The spec with a concrete space: a pending ``lr_max = "range-test"`` is resolved from the
    study's range test (run once per study), saying so on ``stream``."""
    pending = isinstance(spec.space, PendingRangeTest)

    def say() -> None:
        if stream is not None:
            message = f"running the LR range test on {spec.task.name!r} (once per study) ..."
            print(message, file=stream, flush=True)

    resolved = resolve_lr_max(study, spec, on_run=say)
    if pending and stream is not None:
        low, high = resolved.space.plrs.lr_max  # type: ignore[union-attr]
        print(f"lr_max range from the LR range test: [{low:.4g}, {high:.4g}]", file=stream)
    return resolved


def warm_start(study: optuna.Study, spec: StudySpec, stream: IO[str] | None) -> StudySpec:
    """With ``[space] warm_start = "range-test"``, the study's LR range test (run once per
    study, or the recorded one) places its first trials, and with ``warm_start_span`` its
    search; returns the spec to run (``spec`` itself without a warm start).

    The first trials are enqueued once per study, on a study that has no trial yet (recorded
    as :data:`WARM_START_ATTR`; the caller holds the budget lock, so commands started at once
    enqueue them once): PLRS (the first PLRS-family scheduler of the space) with
    ``lr_max = min_loss_lr / (f x warm_start_divisor(spec))`` for each ``f`` of
    :data:`WARM_START_FACTORS` and ``lr_min = WARM_START_RATIO x lr_max``, each clipped into
    the space; the sampler takes over after them. The study's stored spec decides (a study
    stored before the warm start existed gets none). With ``warm_start_span = S`` the ``lr_max``
    range becomes ``[c / sqrt(S), c x sqrt(S)]`` around the first trial's ``c``, within the
    file's range, on every run of the study: ``c`` is recorded with the study
    (:data:`WARM_CENTRE_ATTR`), so a later divisor never moves a stored study's range."""
    stored = study.user_attrs.get(SPEC_ATTR, {}).get("space", {})
    span = stored.get("warm_start_span") or 0.0  # the study's own (one stored before: none)
    if stored.get("warm_start", "none") == "none" or not isinstance(spec.space, SchedulerSpace):
        return spec
    plrs = next((n for n in spec.schedulers if SCHEDULERS[n].searches_bounds), None)
    if plrs is None:
        return spec
    result = stored_range_test(study)
    fresh = WARM_START_ATTR not in study.user_attrs and not study.get_trials(deepcopy=False)
    if result is None:
        if not fresh:  # a study that ran before any warm start: left as it is
            return spec
        if stream is not None:
            message = f"running the LR range test on {spec.task.name!r} for the warm start ..."
            print(message, file=stream, flush=True)
        result = run_range_test(spec)
        record_range_test(study, spec, result)
    centre = _warm_centre(study, spec, float(result.min_loss_lr))
    space = spec.space.plrs
    if span >= 1.0:
        low, high = space.lr_max
        half = math.sqrt(float(span))
        window = (max(low, centre / half), min(high, centre * half))
        if window[0] <= window[1]:  # else the file's range is kept: the test points outside it
            spec = spec.with_lr_max_range(window)
            space = space.with_lr_max(window)
            if stream is not None:
                print(
                    f"lr_max searched in [{window[0]:.4g}, {window[1]:.4g}] (warm_start_span "
                    f"{float(span):g} around the LR range test's {centre:.4g})",
                    file=stream,
                )
    if not fresh:
        return spec
    enqueued: list[dict[str, Any]] = []
    for factor in WARM_START_FACTORS:
        lr_max = centre / factor
        params: dict[str, Any] = {**space.params_for(WARM_START_RATIO * lr_max, lr_max)}
        if len(spec.schedulers) > 1:
            params["scheduler"] = plrs
        if params not in enqueued:
            study.enqueue_trial(params, user_attrs={"warm_start": True})
            enqueued.append(params)
    study.set_user_attr(WARM_START_ATTR, enqueued)
    if stream is not None:
        name = space.param_names[0]
        shown = ", ".join(f"lr_max {p[name]:.4g}" for p in enqueued)
        print(f"warm start from the LR range test: first trials at {shown}", file=stream)
    return spec
