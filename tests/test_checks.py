"""The shared argument checks: one-line messages that name the argument, the rule and the value,
with the argument and the rule also carried apart (the study-file loader reads them)."""

from __future__ import annotations

import math

import pytest

from prl_tune._checks import (
    ArgumentError,
    ArgumentTypeError,
    ArgumentValueError,
    choice,
    flag,
    integer,
    known_keys,
    names,
    number_range,
    real,
    text,
)


def test_integer() -> None:
    assert integer("n", 3, minimum=1) == 3
    assert integer("n", None, minimum=1, optional=True) is None
    with pytest.raises(ArgumentValueError) as low:
        integer("n", 0, minimum=1)
    assert (low.value.argument, low.value.rule) == ("n", "must be >= 1 but got 0.")
    assert str(low.value) == "n must be >= 1 but got 0."
    with pytest.raises(ArgumentTypeError) as wrong:
        integer("n", True, minimum=1, optional=True)
    assert str(wrong.value) == "n must be an integer >= 1 or None but got True (bool)."


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"low": 0.0, "low_open": True}, 0.0, "x must be a finite number > 0 but got 0.0."),
        (
            {"low": 0.0, "high": 1.0, "high_open": True},
            1.0,
            "x must be a finite number in [0, 1) but got 1.0.",
        ),
        ({"high": 2.0}, math.inf, "x must be a finite number <= 2 but got inf."),
        ({}, math.nan, "x must be a finite number but got nan."),
        (
            {"low": 1.0, "low_open": True, "optional": True},
            1,
            "x must be a finite number > 1 or None but got 1.",
        ),
    ],
)
def test_real_rejects_values_outside_the_interval(kwargs: dict, value: float, message: str) -> None:
    with pytest.raises(ArgumentValueError) as info:
        real("x", value, **kwargs)
    assert str(info.value) == message


def test_real_accepts_the_closed_ends_and_returns_floats() -> None:
    assert real("x", 0, low=0.0, high=1.0) == 0.0
    assert isinstance(real("x", 1, low=0.0, high=1.0), float)
    with pytest.raises(
        ArgumentTypeError, match=r"x must be a finite number > 0 but got '1' \(str\)"
    ):
        real("x", "1", low=0.0, low_open=True)


def test_choice_flag_text_names() -> None:
    assert choice("m", "a", ("a", "b")) == "a"
    with pytest.raises(ArgumentValueError, match=r"^m must be one of \['a', 'b'\] but got 'c'\.$"):
        choice("m", "c", ("a", "b"))
    with pytest.raises(ArgumentTypeError, match="f must be a bool"):
        flag("f", 1)
    with pytest.raises(ArgumentTypeError, match=r"t must be a string but got 3 \(int\)"):
        text("t", 3)
    assert names("s", ["a"], ("a", "b")) == ("a",)
    with pytest.raises(ArgumentValueError, match=r"s must not repeat a name but got \['a', 'a'\]"):
        names("s", ["a", "a"], ("a", "b"))
    with pytest.raises(ArgumentValueError, match="s must be a non-empty list of names"):
        names("s", "a", ("a",))


def test_number_range() -> None:
    assert number_range("r", 0.5) == (0.5, 0.5)
    assert number_range("r", [0.0, 1.0], allow_low=True, high=1.0) == (0.0, 1.0)
    with pytest.raises(ArgumentValueError) as info:
        number_range("r", [1.0, 0.1])
    assert info.value.rule == "must be a [low, high] pair with low <= high but got [1.0, 0.1]."
    with pytest.raises(ArgumentValueError, match=r"r must be > 0 but got \[0.0, 1.0\]"):
        number_range("r", [0.0, 1.0])


def test_known_keys_names_the_key_and_suggests_one() -> None:
    with pytest.raises(ArgumentValueError) as info:
        known_keys({"n_trails": 1}, ["n_trials", "seed"], owner="[study]")
    assert info.value.argument == "n_trails"
    assert info.value.rule == (
        "unknown key for [study] (did you mean 'n_trials'?); the keys are ['n_trials', 'seed']."
    )


def test_both_errors_are_argument_errors_and_builtin_errors() -> None:
    assert issubclass(ArgumentValueError, ValueError) and issubclass(
        ArgumentValueError, ArgumentError
    )
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ArgumentError)
