"""Numbers and tables as plain text, for every text form of a report."""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any) -> str:
    """A number with 4 significant digits (``nan``/``inf`` as they are); ``None`` as ``-``."""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "-" if value is None else str(value)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in out)
