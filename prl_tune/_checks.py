"""The small argument checks every public constructor uses (one home for each rule).

Each check returns the value in its canonical type or raises an :class:`ArgumentError` whose
message is one line, ``"<argument> <rule> but got <value>."``. The error also carries the
argument's name and the rule separately, so a caller that builds an object from a study file can
say which ``[section] key`` was wrong without parsing the message.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Collection, Iterable, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")


class ArgumentError(Exception):
    """A bad argument: :attr:`argument` broke :attr:`rule` (the message joins the two)."""

    def __init__(self, argument: str, rule: str) -> None:
        super().__init__(f"{argument} {rule}")
        self.argument = argument
        self.rule = rule


class ArgumentValueError(ArgumentError, ValueError):
    """An argument of the right type with a wrong value."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type."""


def _type_name(value: object) -> str:
    return type(value).__name__


def _or_none(optional: bool) -> str:
    return " or None" if optional else ""


def integer(name: str, value: Any, *, minimum: int | None = None, optional: bool = False) -> Any:
    """``value`` as an int ``>= minimum``; ``None`` passes when ``optional``; bools are refused."""
    if value is None and optional:
        return None
    rule = ("" if minimum is None else f" >= {minimum}") + _or_none(optional)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            name, f"must be an integer{rule} but got {value!r} ({_type_name(value)})."
        )
    if minimum is not None and value < minimum:
        raise ArgumentValueError(name, f"must be >= {minimum}{_or_none(optional)} but got {value}.")
    return int(value)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    if math.isfinite(low) and math.isfinite(high):
        return f" in {left}{low:g}, {high:g}{right}"
    if math.isfinite(low):
        return f" {'>' if low_open else '>='} {low:g}"
    if math.isfinite(high):
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def real(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` as a finite float inside the interval; ``None`` passes when ``optional``."""
    if value is None and optional:
        return None
    expected = f"a finite number{_interval(low, high, low_open, high_open)}{_or_none(optional)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            name, f"must be {expected} but got {value!r} ({_type_name(value)})."
        )
    number = float(value)
    inside = math.isfinite(number)
    inside = inside and (number > low if low_open else number >= low)
    inside = inside and (number < high if high_open else number <= high)
    if not inside:
        raise ArgumentValueError(name, f"must be {expected} but got {value!r}.")
    return number


def flag(name: str, value: Any) -> bool:
    """``value`` when it is a bool."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            name, f"must be a bool (true or false) but got {value!r} ({_type_name(value)})."
        )
    return value


def text(name: str, value: Any) -> str:
    """``value`` when it is a string."""
    if not isinstance(value, str):
        raise ArgumentTypeError(name, f"must be a string but got {value!r} ({_type_name(value)}).")
    return value


def choice(name: str, value: Any, choices: Collection[_T]) -> _T:
    """``value`` when it is one of ``choices``."""
    if isinstance(value, str) and value in choices:
        return value  # type: ignore[return-value]
    raise ArgumentValueError(name, f"must be one of {list(choices)} but got {value!r}.")


def names(name: str, value: Any, choices: Collection[str]) -> tuple[str, ...]:
    """A non-empty list of distinct names from ``choices``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ArgumentValueError(name, f"must be a non-empty list of names but got {value!r}.")
    for item in value:
        if item not in choices:
            raise ArgumentValueError(name, f"each must be one of {list(choices)} but got {item!r}.")
    if len(set(value)) != len(value):
        raise ArgumentValueError(name, f"must not repeat a name but got {list(value)!r}.")
    return tuple(value)


def number_range(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = math.inf,
    allow_low: bool = False,
) -> tuple[float, float]:
    """``value`` as a ``(lo, hi)`` pair of floats inside ``[low, high]``.

    A single number ``v`` means the fixed value ``(v, v)``. The rule: both finite, ``lo <= hi``,
    ``lo > low`` (``>=`` with ``allow_low``), ``hi <= high``.
    """
    shape = "must be a number or a [low, high] pair"
    if isinstance(value, bool):
        raise ArgumentTypeError(name, f"{shape} but got {value!r}.")
    if isinstance(value, numbers.Real):
        pair: tuple[Any, Any] = (value, value)
        shown: Any = value
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = (value[0], value[1])
        shown = list(value)
    else:
        raise ArgumentTypeError(name, f"{shape} but got {value!r}.")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in pair):
        raise ArgumentTypeError(name, f"must hold numbers but got {value!r}.")
    lo, hi = float(pair[0]), float(pair[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ArgumentValueError(name, f"must be finite but got {shown!r}.")
    if lo < low or (lo == low and not allow_low):
        raise ArgumentValueError(
            name, f"must be {'>=' if allow_low else '>'} {low:g} but got {shown!r}."
        )
    if hi > high:
        raise ArgumentValueError(name, f"must be <= {high:g} but got {shown!r}.")
    if lo > hi:
        raise ArgumentValueError(
            name, f"must be a [low, high] pair with low <= high but got {shown!r}."
        )
    return lo, hi


def known_keys(keys: Iterable[str], allowed: Collection[str], *, owner: str = "") -> None:
    """Refuse the first key not in ``allowed`` (of ``owner``), with a did-you-mean hint."""
    for key in keys:
        if key not in allowed:
            match = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            where = f" for {owner}" if owner else ""
            raise ArgumentValueError(
                key, f"unknown key{where}{hint}; the keys are {sorted(allowed)}."
            )
