"""Study files: TOML parsed once into a typed ``StudySpec``, and what a trial does with it."""

from prl_tune.config._spec import (
    DEFAULT_STORAGE,
    EVALUATION_SEED_OFFSET,
    METRICS,
    RANGE_TEST,
    ComparisonSettings,
    PruningSettings,
    RaySettings,
    SpecError,
    StudySettings,
    StudySpec,
    TaskSpec,
    load_spec,
    parse_override,
    spec_differences,
)
from prl_tune.config._trial import (
    LossRange,
    load_study_task,
    objective_value,
    run_range_test,
    steps_per_trial,
    train_trial,
)

__all__ = [
    "DEFAULT_STORAGE",
    "EVALUATION_SEED_OFFSET",
    "METRICS",
    "RANGE_TEST",
    "ComparisonSettings",
    "LossRange",
    "PruningSettings",
    "RaySettings",
    "SpecError",
    "StudySettings",
    "StudySpec",
    "TaskSpec",
    "load_spec",
    "load_study_task",
    "objective_value",
    "parse_override",
    "run_range_test",
    "spec_differences",
    "steps_per_trial",
    "train_trial",
]
