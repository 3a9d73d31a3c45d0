"""Drawing a range test's loss curve (matplotlib, the ``plot`` extra)."""

from __future__ import annotations
