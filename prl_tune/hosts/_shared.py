"""What both hosts' runners do the same way before their trials start."""

from __future__ import annotations

from typing import IO, Any

import optuna

from prl_tune.config import StudySpec
from prl_tune.space import PendingRangeTest
from prl_tune.store import resolve_lr_max


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
