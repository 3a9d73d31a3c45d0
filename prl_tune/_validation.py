"""Argument checks shared by public constructors (one-line messages: argument, rule, value)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def check_range(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = math.inf,
    allow_low: bool = False,
) -> tuple[float, float]:
    """Return ``value`` as a ``(lo, hi)`` pair of floats inside ``[low, high]``.

    A single number ``v`` (or a pair ``[v, v]``) means a fixed value ``(v, v)``. The rule
    checked: both finite, ``lo <= hi``, ``lo > low`` (``>=`` with ``allow_low``), ``hi <= high``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a [low, high] pair but got {value!r}.")
    if isinstance(value, (int, float)):
        pair: tuple[Any, Any] = (value, value)
        fixed = True
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = (value[0], value[1])
        fixed = False
    else:
        raise TypeError(f"{name} must be a number or a [low, high] pair but got {value!r}.")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers but got {value!r}.")
    lo, hi = float(pair[0]), float(pair[1])
    bound = ">=" if allow_low else ">"
    shown = list(value) if not fixed else value
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite but got {shown!r}.")
    if (lo < low) or (lo == low and not allow_low):
        raise ValueError(f"{name} must be {bound} {low:g} but got {shown!r}.")
    if hi > high:
        raise ValueError(f"{name} must be <= {high:g} but got {shown!r}.")
    if lo > hi:
        raise ValueError(f"{name} must be a [low, high] pair with low <= high but got {shown!r}.")
    return lo, hi
