"""The study file (TOML), validated once into a ``StudySpec``.

Every error is a ``SpecError`` with one line that names the field (``[section] key``), the rule
and the value, so the CLI can print it and exit with code 2 before anything touches the store.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from prl_tune.space import ALL_SCHEDULERS, PLRSSpace, SchedulerSpace
from prl_tune.stability import MEMORY_MODES

if TYPE_CHECKING:
    from prl_tune.stability import StabilityRules

METRICS = {"val_accuracy": "maximize", "val_loss": "minimize", "train_loss": "minimize"}
PRUNERS = ("none", "median", "hyperband")
RANGE_TEST = "range-test"
SAMPLERS = ("tpe", "random")
OPTIMIZERS = ("sgd", "adamw")
DEFAULT_STORAGE = "sqlite:///prl_tune.db"


class SpecError(ValueError):
    """A study file or override that breaks a rule; the message is one line."""


# ---------------------------------------------------------------------------------------------
# Field checks: each takes (field label, value) and returns the value or raises SpecError.


def _type_name(value: Any) -> str:
    return type(value).__name__


def _str(choices: tuple[str, ...] | None = None) -> Callable[[str, Any], str]:
    def check(label: str, value: Any) -> str:
        if not isinstance(value, str):
            raise SpecError(f"{label}: must be a string but got {value!r} ({_type_name(value)}).")
        if choices is not None and value not in choices:
            raise SpecError(f"{label}: must be one of {list(choices)} but got {value!r}.")
        return value

    return check


def _int(minimum: int) -> Callable[[str, Any], int]:
    def check(label: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{label}: must be an integer but got {value!r} ({_type_name(value)}).")
        if value < minimum:
            raise SpecError(f"{label}: must be >= {minimum} but got {value}.")
        return value

    return check


def _float(
    low: float = -math.inf, high: float = math.inf, *, open_low: bool = False
) -> Callable[[str, Any], float]:
    def check(label: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{label}: must be a number but got {value!r} ({_type_name(value)}).")
        v = float(value)
        if not math.isfinite(v):
            raise SpecError(f"{label}: must be finite but got {value!r}.")
        if v < low or (open_low and v == low) or v > high:
            lo = f"> {low:g}" if open_low else f">= {low:g}"
            rule = lo if high == math.inf else f"{lo} and <= {high:g}"
            raise SpecError(f"{label}: must be {rule} but got {value!r}.")
        return v

    return check


def _bool(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{label}: must be true or false but got {value!r} ({_type_name(value)}).")
    return value


def _range(label: str, value: Any) -> Any:
    """A ``[low, high]`` pair or a single number; checked in depth by the space objects."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list)):
        raise SpecError(
            f"{label}: must be a number or a [low, high] list but got {value!r} "
            f"({_type_name(value)})."
        )
    return tuple(value) if isinstance(value, list) else value


def _names(choices: tuple[str, ...]) -> Callable[[str, Any], tuple[str, ...]]:
    def check(label: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise SpecError(f"{label}: must be a non-empty list of names but got {value!r}.")
        for item in value:
            if item not in choices:
                raise SpecError(f"{label}: each must be one of {list(choices)} but got {item!r}.")
        if len(set(value)) != len(value):
            raise SpecError(f"{label}: must not repeat a name but got {value!r}.")
        return tuple(value)

    return check


def _table(label: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{label}: must be a table but got {value!r} ({_type_name(value)}).")
    return dict(value)


def _rules_field(label: str, value: Any) -> Any:
    """``true`` (default thresholds), ``false`` (only the non-finite stop) or a table."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict):
        raise SpecError(f"{label}: must be true, false or a table of thresholds but got {value!r}.")
    from prl_tune.stability import StabilityRules

    # TOML has no null: ``false`` switches off a rule whose threshold is optional.
    rules = {
        key: None if item is False and key in _OPTIONAL_RULES else item
        for key, item in value.items()
    }
    try:
        StabilityRules.from_mapping(rules)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"[pruning.rules] {exc}") from exc
    return rules


_OPTIONAL_RULES = ("explode_factor", "collapse_window", "rise_window")


def _lr_max_field(label: str, value: Any) -> Any:
    if value == RANGE_TEST:
        return value
    if isinstance(value, str):
        raise SpecError(
            f"{label}: must be a [low, high] list, a number or {RANGE_TEST!r} but got {value!r}."
        )
    return _range(label, value)


def _pair_of_floats(label: str, value: Any) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2):
        raise SpecError(f"{label}: must be a [beta1, beta2] list but got {value!r}.")
    b1, b2 = (_float(0.0, 1.0)(label, v) for v in value)
    if b1 >= 1.0 or b2 >= 1.0:
        raise SpecError(f"{label}: each must be in [0, 1) but got {value!r}.")
    return (b1, b2)


_REQUIRED = object()

# section -> key -> (check, default)
_SCHEMA: dict[str, dict[str, tuple[Callable[[str, Any], Any], Any]]] = {
    "study": {
        "name": (_str(), _REQUIRED),
        "storage": (_str(), DEFAULT_STORAGE),
        "metric": (_str(tuple(METRICS)), "val_accuracy"),
        "direction": (_str(("maximize", "minimize")), None),
        "value": (_str(("last", "best")), "last"),
        "n_trials": (_int(1), _REQUIRED),
        "workers": (_int(1), 1),
        "seed": (_int(0), 0),
        "sampler": (_str(SAMPLERS), "tpe"),
    },
    "task": {
        "name": (_str(), "digits"),
        "epochs": (_int(1), _REQUIRED),
        "device": (_str(), "auto"),
        "params": (_table, {}),
    },
    "optimizer": {
        "name": (_str(OPTIMIZERS), "sgd"),
        "momentum": (_float(0.0, 1.0), 0.0),
        "nesterov": (_bool, False),
        "weight_decay": (_float(0.0), 0.0),
        "betas": (_pair_of_floats, None),
        "grad_clip": (_float(0.0, open_low=True), None),
    },
    "space": {
        "schedulers": (_names(ALL_SCHEDULERS), ("plrs",)),
        "lr_max": (_lr_max_field, (1e-3, 1.0)),
        "range_test_span": (_float(1.0), 3.0),
        "lr_min_ratio": (_range, None),
        "lr_min": (_range, None),
        "lr": (_range, (1e-3, 1.0)),
        "warmup_steps": (_int(0), 0),
        "allocation": (_str(("equal", "sampler")), "equal"),
    },
    "pruning": {
        "base": (_str(PRUNERS), "none"),
        "n_startup_trials": (_int(0), 5),
        "n_warmup_steps": (_int(0), 0),
        "min_resource": (_int(1), 1),
        "reduction_factor": (_int(2), 3),
        "rules": (_rules_field, True),
        "memory": (_str(MEMORY_MODES), "dominance"),
    },
}
_REQUIRED_SECTIONS = ("study", "task")

_DIGITS_PARAMS: dict[str, Callable[[str, Any], Any]] = {
    "model": _str(("cnn", "mlp")),
    "batch_size": _int(1),
    "val_fraction": _float(0.0, 1.0, open_low=True),
}


@dataclass(frozen=True)
class StudySpec:
    """A validated study: every section as a plain dict with defaults filled in.

    Build it with :func:`load_spec` (a TOML file) or :meth:`from_dict`.
    """

    study: dict[str, Any]
    task: dict[str, Any]
    optimizer: dict[str, Any]
    space: dict[str, Any]
    pruning: dict[str, Any]
    source: str = field(default="<dict>", compare=False)

    @property
    def name(self) -> str:
        return str(self.study["name"])

    @property
    def storage(self) -> str:
        return str(self.study["storage"])

    @property
    def direction(self) -> str:
        return str(self.study["direction"])

    @property
    def metric(self) -> str:
        return str(self.study["metric"])

    @property
    def n_trials(self) -> int:
        return int(self.study["n_trials"])

    @property
    def workers(self) -> int:
        return int(self.study["workers"])

    def search_space(self, lr_max: tuple[float, float] | None = None) -> SchedulerSpace:
        """The ``SchedulerSpace`` the ``[space]`` section describes (already validated).

        ``lr_max`` replaces ``[space] lr_max``; it is required when that is ``"range-test"``
        (the backend resolves it with the LR range test and stores the result).
        """
        space = dict(self.space)
        if lr_max is not None:
            space["lr_max"] = lr_max
        elif space["lr_max"] == RANGE_TEST:
            raise ValueError("[space] lr_max is 'range-test': pass the range the test found.")
        return _build_space(space, "[space]")

    def stability_rules(self) -> StabilityRules:
        """The ``[pruning] rules`` as ``StabilityRules`` (``false``: only the non-finite stop)."""
        from prl_tune.stability import StabilityRules

        rules = self.pruning["rules"]
        if rules is True:
            return StabilityRules()
        if rules is False:
            return StabilityRules.from_mapping(
                {"explode_factor": None, "collapse_window": None, "rise_window": None}
            )
        return StabilityRules.from_mapping(rules)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every section (tuples become lists)."""
        data = {
            name: getattr(self, name) for name in ("study", "task", "optimizer", "space", "pruning")
        }
        result: dict[str, Any] = json.loads(json.dumps(data))
        return result

    def replace(self, **sections: dict[str, Any]) -> StudySpec:
        """A copy with whole sections replaced (used by command-line overrides, re-validated)."""
        data = self.to_dict()
        data.update(sections)
        return StudySpec.from_dict(data, source=self.source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> StudySpec:
        """Validate a parsed study file; raises :class:`SpecError` naming the first bad field."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: must be a table of sections but got {data!r}.")
        unknown = sorted(set(data) - set(_SCHEMA))
        if unknown:
            raise SpecError(f"[{unknown[0]}]: unknown section; the sections are {sorted(_SCHEMA)}.")
        sections: dict[str, dict[str, Any]] = {}
        for section, fields in _SCHEMA.items():
            raw = data.get(section)
            if raw is None:
                if section in _REQUIRED_SECTIONS:
                    raise SpecError(f"[{section}]: required section is missing.")
                raw = {}
            if not isinstance(raw, Mapping):
                raise SpecError(f"[{section}]: must be a table but got {raw!r}.")
            sections[section] = _check_section(section, raw, fields)
        _check_cross_fields(sections)
        return cls(**sections, source=source)


def _check_section(
    section: str,
    raw: Mapping[str, Any],
    fields: Mapping[str, tuple[Callable[[str, Any], Any], Any]],
) -> dict[str, Any]:
    for key in raw:
        if key not in fields:
            hint = _close_match(key, fields)
            raise SpecError(f"[{section}] {key}: unknown key{hint}; the keys are {sorted(fields)}.")
    result: dict[str, Any] = {}
    for key, (check, default) in fields.items():
        label = f"[{section}] {key}"
        if raw.get(key) is not None:  # None: unset (TOML has no null; it comes from to_dict)
            result[key] = check(label, raw[key])
        elif default is _REQUIRED:
            raise SpecError(f"{label}: required key is missing.")
        else:
            result[key] = default
    return result


def _close_match(key: str, fields: Mapping[str, Any]) -> str:
    import difflib

    match = difflib.get_close_matches(key, list(fields), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_cross_fields(sections: dict[str, dict[str, Any]]) -> None:
    study = sections["study"]
    expected = METRICS[study["metric"]]
    if study["direction"] is None:
        study["direction"] = expected
    elif study["direction"] != expected:
        raise SpecError(
            f"[study] direction: {study['metric']} is to be {expected}d but got "
            f"{study['direction']!r}."
        )
    optimizer = sections["optimizer"]
    if optimizer["name"] == "sgd" and optimizer["betas"] is not None:
        raise SpecError(f"[optimizer] betas: only adamw takes betas but got {optimizer['betas']}.")
    if optimizer["nesterov"] and optimizer["momentum"] == 0.0:
        raise SpecError("[optimizer] nesterov: needs momentum > 0 but momentum is 0.")
    if optimizer["name"] == "adamw" and (optimizer["momentum"] or optimizer["nesterov"]):
        raise SpecError(
            f"[optimizer] momentum: adamw takes betas, not momentum, but got "
            f"{optimizer['momentum']}."
        )
    _check_task(sections["task"])
    _build_space(sections["space"], "[space]")


def _check_task(task: dict[str, Any]) -> None:
    name = task["name"]
    if name == "digits":
        for key, value in task["params"].items():
            check = _DIGITS_PARAMS.get(key)
            if check is None:
                raise SpecError(
                    f"[task.params] {key}: unknown key for task 'digits'; the keys are "
                    f"{sorted(_DIGITS_PARAMS)}."
                )
            check(f"[task.params] {key}", value)
    elif ":" in name:
        module_name, _, function_name = name.partition(":")
        if not module_name or not function_name.isidentifier():
            raise SpecError(
                f"[task] name: must be 'digits' or 'package.module:function' but got {name!r}."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecError(
                f"[task] name: module {module_name!r} cannot be imported ({exc}); got {name!r}."
            ) from exc
        if not callable(getattr(module, function_name, None)):
            raise SpecError(
                f"[task] name: {module_name!r} has no function {function_name!r}; got {name!r}."
            )
    else:
        raise SpecError(
            f"[task] name: must be a built-in task ['digits'] or 'package.module:function' but "
            f"got {name!r}."
        )
    device = task["device"]
    if not (device in ("auto", "cpu", "cuda", "mps") or device.startswith("cuda:")):
        raise SpecError(
            f"[task] device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' but got {device!r}."
        )


def _build_space(space: Mapping[str, Any], label: str) -> SchedulerSpace:
    lr_max = space["lr_max"]
    if lr_max == RANGE_TEST:
        # Resolved at run time (and checked again then); check the rest with a stand-in that
        # starts at the low end of lr_min (PLRSSpace checks lr_min itself).
        low = space["lr_min"][0] if isinstance(space["lr_min"], tuple) else space["lr_min"]
        floor = float(low) if isinstance(low, (int, float)) and float(low) > 0 else 1e-3
        lr_max = (floor, 10 * floor)
    kwargs: dict[str, Any] = {"lr_max": lr_max}
    if space["lr_min_ratio"] is not None:
        kwargs["lr_min_ratio"] = space["lr_min_ratio"]
    if space["lr_min"] is not None:
        kwargs["lr_min"] = space["lr_min"]
    try:
        plrs = PLRSSpace(**kwargs)
        return SchedulerSpace(space["schedulers"], plrs=plrs, lr=space["lr"])
    except (TypeError, ValueError) as exc:
        key, _, rule = str(exc).partition(" ")
        raise SpecError(f"{label} {key}: {rule}") from exc


def load_spec(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read and validate a study file; ``overrides`` maps ``"section.key"`` to a new value."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"study file {str(path)!r} cannot be read: {exc.strerror}.") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"study file {str(path)!r} is not valid TOML: {exc}.") from exc
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if not section or not key:
            raise SpecError(f"--set: must be SECTION.KEY=VALUE but got {dotted!r}.")
        target: Any = data.setdefault(section, {})
        *parents, leaf = key.split(".")
        for parent in parents:
            if not isinstance(target, dict):
                break
            target = target.setdefault(parent, {})
        if not isinstance(target, dict):
            raise SpecError(f"--set: {dotted!r} does not name a key inside a table.")
        target[leaf] = value
    return StudySpec.from_dict(data, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``SECTION.KEY=VALUE`` (VALUE in TOML syntax; a bare word is a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set: must be SECTION.KEY=VALUE but got {text!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def spec_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields that differ between two ``to_dict()`` forms, ignoring run-time-only keys."""
    ignore = {("study", "n_trials"), ("study", "workers"), ("study", "storage")}
    diffs = []
    for section in sorted(set(stored) | set(current)):
        a, b = stored.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section, key) in ignore:
                continue
            if a.get(key) != b.get(key):
                diffs.append(f"[{section}] {key}: stored {a.get(key)!r}, now {b.get(key)!r}")
    return diffs
