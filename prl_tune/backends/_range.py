"""The LR range test of a study's task, recorded in the store (``lr_max = "range-test"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prl_tune.config import RANGE_TEST, SpecError, StudySpec

if TYPE_CHECKING:
    import optuna

    from prl_tune.lr_finder import RangeTestResult

#: Study user attribute holding the range test: its curve, suggestions and the lr_max range used.
RANGE_TEST_ATTR = "prl_tune.range_test"


def run_range_test(spec: StudySpec) -> RangeTestResult:
    """Run the LR range test on the study's task and optimizer (seeded, model restored)."""
    from prl_tune.backends._objective import optimizer_args
    from prl_tune.lr_finder import range_test_task
    from prl_tune.training import load_task, select_device

    seed = int(spec.study["seed"])
    device = select_device(spec.task["device"])
    task = load_task(spec.task["name"], seed=seed, device=device, **spec.task["params"])
    name, params, _ = optimizer_args(spec)
    return range_test_task(task, optimizer=name, optimizer_params=params, seed=seed, device=device)


def record_range_test(study: optuna.Study, spec: StudySpec, result: RangeTestResult) -> None:
    """Store the curve and the ``lr_max`` search range it implies on the study."""
    top = float(result.suggested_lr_max)
    span = float(spec.space["range_test_span"])
    record: dict[str, Any] = {"result": result.to_dict(), "lr_max": [top / span, top]}
    study.set_user_attr(RANGE_TEST_ATTR, record)


def stored_range_test(study: optuna.Study) -> RangeTestResult | None:
    """The range test recorded on ``study``, if any."""
    from prl_tune.lr_finder import RangeTestResult

    record = study.user_attrs.get(RANGE_TEST_ATTR)
    return None if record is None else RangeTestResult.from_dict(record["result"])


def resolve_lr_max(study: optuna.Study, spec: StudySpec) -> tuple[float, float] | None:
    """The ``lr_max`` range for ``"range-test"`` studies (running the test once), else None.

    The range is ``[suggested / range_test_span, suggested]`` (span 3 by default): the paper's
    recipe puts ``lr_max`` just below where the loss blows up, and the suggestion is already
    4x below the loss minimum, so a wider span would search mostly the slow region.
    """
    if spec.space["lr_max"] != RANGE_TEST:
        return None
    if RANGE_TEST_ATTR not in study.user_attrs:
        record_range_test(study, spec, run_range_test(spec))
    low, high = study.user_attrs[RANGE_TEST_ATTR]["lr_max"]
    resolved = (float(low), float(high))
    try:
        spec.search_space(resolved)
    except ValueError as exc:  # e.g. an lr_min range above what the range test allows
        raise SpecError(f"{exc} (lr_max {list(resolved)} from the LR range test)") from exc
    return resolved
