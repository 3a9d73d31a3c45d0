"""``[task] precision``, ``channels_last`` and ``compile``: checked in the file, handed to every
trial, and no change to the identity of a study stored before these keys existed."""

from __future__ import annotations

import copy

import pytest

from prl_tune.config import SpecError, StudySpec, spec_differences

VALID = {
    "study": {"name": "s", "n_trials": 3, "storage": "sqlite:///x.db"},
    "task": {"name": "digits", "epochs": 2, "params": {"model": "mlp"}},
    "space": {"lr_max": [0.001, 1.0]},
}


def _task(**keys: object) -> dict:
    data = copy.deepcopy(VALID)
    data["task"].update(keys)
    return data


def test_the_defaults_are_float32_standard_order_and_no_compile() -> None:
    task = StudySpec.from_dict(VALID).task
    assert (task.precision, task.channels_last, task.compile) == ("fp32", False, False)
    speedy = StudySpec.from_dict(_task(precision="auto", channels_last=True, compile="eager"))
    assert (speedy.task.precision, speedy.task.channels_last, speedy.task.compile) == (
        "auto",
        True,
        "eager",
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"precision": "fp16"},
            "[task] precision: must be one of ['fp32', 'bf16', 'auto'] but got 'fp16'",
        ),
        ({"channels_last": "yes"}, "[task] channels_last: must be true or false but got 'yes'"),
        ({"compile": "fast"}, "[task] compile: must be one of"),
        ({"compile": 1}, "[task] compile: must be a bool or a backend name"),
    ],
)
def test_a_bad_speed_option_is_one_line_naming_it(keys: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(_task(**keys))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_study_stored_before_the_keys_existed_keeps_its_identity() -> None:
    stored = StudySpec.from_dict(VALID).to_dict()
    for key in ("precision", "channels_last", "compile"):
        del stored["task"][key]  # as an older prl_tune stored it
    assert spec_differences(stored, StudySpec.from_dict(VALID).to_dict()) == []
    assert spec_differences(stored, StudySpec.from_dict(_task(precision="bf16")).to_dict()) == [
        "[task] precision: stored 'fp32', now 'bf16'"
    ]
