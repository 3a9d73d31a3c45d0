"""The LR range test that picks PLRS's ``lr_max`` (and ``lr_min``) before a study."""

from __future__ import annotations

from prl_tune.lr_finder._range_test import STEP_MODES, range_test, range_test_task
from prl_tune.lr_finder._result import RangeTestResult

__all__ = ["STEP_MODES", "RangeTestResult", "range_test", "range_test_task"]
