"""What prl_tune keeps on a stored study: its spec, its version and its LR range test.

Both hosts write the same store, so these helpers sit below them. They use Optuna's public API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from prl_tune._version import __version__
from prl_tune.config import SpecError, StudySpec, run_range_test, spec_differences
from prl_tune.space import PendingRangeTest
from prl_tune.store._urls import open_storage, redact, setup_lock

if TYPE_CHECKING:
    from prl_tune.lr_finder import RangeTestResult

SPEC_ATTR = "prl_tune.spec"
VERSION_ATTR = "prl_tune.version"
#: Study user attribute holding the range test: its curve, suggestions and the lr_max range used.
RANGE_TEST_ATTR = "prl_tune.range_test"


def create_or_resume(
    spec: StudySpec, storage: optuna.storages.RDBStorage | None = None
) -> optuna.Study:
    """Create the study in its storage, or load it after checking it has the same configuration.

    The spec is stored on the study as :func:`stored_spec` gives it (no password). On a
    PostgreSQL server the study is created under :func:`~prl_tune.store.setup_lock`, so that
    machines started at once create it once, each finding the others' spec.

    ``storage``: the storage already opened for ``spec.storage`` (default: open it).
    """
    storage = open_storage(spec.storage) if storage is None else storage
    current = stored_spec(spec)
    with setup_lock(spec.storage):
        try:
            study = optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            direction = StudyDirection[spec.direction.upper()]
            study = optuna.create_study(study_name=spec.name, storage=storage, direction=direction)
            study.set_user_attr(SPEC_ATTR, current)
            study.set_user_attr(VERSION_ATTR, __version__)
            return study
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        raise SpecError(
            f"[study] name: a study {spec.name!r} not made by prl-tune already exists in "
            f"{redact(spec.storage)!r}; choose another name."
        )
    diffs = spec_differences(stored, current)
    if diffs:
        raise SpecError(
            f"[study] name: study {spec.name!r} in {redact(spec.storage)!r} was created with "
            f"another configuration ({'; '.join(diffs)}); choose another name to start a new study."
        )
    return study


def stored_spec(spec: StudySpec) -> dict[str, Any]:
    """``spec.to_dict()`` as it may be stored or handed on: the storage URL without its
    password (:func:`~prl_tune.store.redact`). The storage is a run-time setting, so a study
    resumes from any URL of the same database."""
    data = spec.to_dict()
    data["study"]["storage"] = redact(spec.storage)
    return data


def uses_budget(trial: FrozenTrial) -> bool:
    """Whether ``trial`` uses up the study's budget: it runs or has finished, but not as a FAIL
    that is to be re-run. A FAIL counts when its own code raised (``error``); one failed because
    its process died or was interrupted (``fail_reason``), or by a stale heartbeat (neither), is
    re-run. An enqueued trial not yet asked (WAITING) does not count."""
    if trial.state == TrialState.WAITING:
        return False
    if trial.state != TrialState.FAIL:
        return True
    return "error" in trial.user_attrs and "fail_reason" not in trial.user_attrs


def counted_trials(study: optuna.Study) -> int:
    """Trials that use up the budget (:func:`uses_budget`)."""
    return sum(uses_budget(trial) for trial in study.get_trials(deepcopy=False))


def record_range_test(study: optuna.Study, spec: StudySpec, result: RangeTestResult) -> None:
    """Store the curve and the ``lr_max`` range it implies, ``[suggested / span, suggested]``."""
    top = float(result.suggested_lr_max)
    record: dict[str, Any] = {
        "result": result.to_dict(),
        "lr_max": [top / spec.range_test_span, top],
    }
    study.set_user_attr(RANGE_TEST_ATTR, record)


def stored_range_test(study: optuna.Study) -> RangeTestResult | None:
    """The range test recorded on ``study``, if any."""
    from prl_tune.lr_finder import RangeTestResult

    record = study.user_attrs.get(RANGE_TEST_ATTR)
    return None if record is None else RangeTestResult.from_dict(record["result"])


def resolve_lr_max(
    study: optuna.Study, spec: StudySpec, *, on_run: Callable[[], None] | None = None
) -> StudySpec:
    """The spec with a concrete space: for a ``"range-test"`` space, the test runs once (its
    record on the study is reused on resume) and sets the ``lr_max`` range; else ``spec``.

    ``on_run`` is called just before the test runs (not when a recorded test is reused).

    Raises:
        SpecError: the range the test gives breaks a rule of the space (e.g. an ``lr_min`` range
            above it).
    """
    if not isinstance(spec.space, PendingRangeTest):
        return spec
    if RANGE_TEST_ATTR not in study.user_attrs:
        if on_run is not None:
            on_run()
        record_range_test(study, spec, run_range_test(spec))
    low, high = study.user_attrs[RANGE_TEST_ATTR]["lr_max"]
    return spec.with_lr_max((float(low), float(high)))
