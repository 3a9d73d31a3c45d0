"""Study files: TOML validated once into a ``StudySpec``."""

from prl_tune.config._spec import (
    DEFAULT_STORAGE,
    RANGE_TEST,
    SpecError,
    StudySpec,
    load_spec,
    parse_override,
    spec_differences,
)

__all__ = [
    "DEFAULT_STORAGE",
    "RANGE_TEST",
    "SpecError",
    "StudySpec",
    "load_spec",
    "parse_override",
    "spec_differences",
]
