"""The study file (TOML), parsed once into frozen, typed objects: a ``StudySpec``.

The loader knows the file's layout (sections, keys, defaults); every rule about a value lives in
the constructor of the object that holds it. A broken rule is a ``SpecError`` with one line that
names the field (``[section] key``), the rule and the value, so the CLI can print it and exit with
code 2 before anything touches the store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from prl_tune._checks import (
    ArgumentError,
    ArgumentTypeError,
    ArgumentValueError,
    choice,
    flag,
    integer,
    known_keys,
    real,
    text,
)
from prl_tune.space import PendingRangeTest, PLRSSpace, SchedulerSpace
from prl_tune.stability import MEMORY_MODES, OPTIONAL_RULES, StabilityRules
from prl_tune.training import (
    PRECISIONS,
    OptimizerConfig,
    check_compile,
    check_device_name,
    resolve_task,
    task_options,
)

METRICS = MappingProxyType(
    {"val_accuracy": "maximize", "val_loss": "minimize", "train_loss": "minimize"}
)
PRUNERS = ("none", "median", "hyperband", "asha")
BACKENDS = ("optuna", "ray")
RANGE_TEST = "range-test"
SAMPLERS = ("tpe", "random")
ALLOCATIONS = ("equal", "sampler")
#: ``[space] warm_start``: nothing, or first trials placed by the LR range test.
WARM_STARTS = ("none", RANGE_TEST)
DEFAULT_STORAGE = "sqlite:///prl_tune.db"
#: The evaluation seeds of ``prl-tune compare`` are ``seed + EVALUATION_SEED_OFFSET + k``, above
#: every tuning seed ``seed + repeat`` (``repeat < [comparison] studies <= this``).
EVALUATION_SEED_OFFSET = 1000


class SpecError(ValueError):
    """A study file or override that breaks a rule; the message is one line."""


@dataclass(frozen=True, kw_only=True)
class StudySettings:
    """The ``[study]`` section: what is searched for, where it is stored, and the budget."""

    name: str
    n_trials: int
    storage: str = DEFAULT_STORAGE
    metric: str = "val_accuracy"
    direction: str | None = None  # None: the metric's own direction
    value: str = "last"
    workers: int = 1
    worker_restarts: int | None = None  # None: 2 x workers
    workers_per_gpu: int = 1
    threads: int | None = None  # None: this process's torch threads, cores shared by workers
    seed: int = 0
    sampler: str = "tpe"
    backend: str = "optuna"
    report: str | None = None  # a file the report is written to when the study ends

    def __post_init__(self) -> None:
        text("name", self.name)
        integer("n_trials", self.n_trials, minimum=1)
        text("storage", self.storage)
        expected = METRICS[choice("metric", self.metric, tuple(METRICS))]
        if self.direction is None:
            object.__setattr__(self, "direction", expected)
        elif choice("direction", self.direction, ("maximize", "minimize")) != expected:
            raise ArgumentValueError(
                "direction", f"{self.metric} is to be {expected}d but got {self.direction!r}."
            )
        choice("value", self.value, ("last", "best"))
        integer("workers", self.workers, minimum=1)
        integer("worker_restarts", self.worker_restarts, minimum=0, optional=True)
        integer("workers_per_gpu", self.workers_per_gpu, minimum=1)
        integer("threads", self.threads, minimum=1, optional=True)
        integer("seed", self.seed, minimum=0)
        choice("sampler", self.sampler, SAMPLERS)
        choice("backend", self.backend, BACKENDS)
        if self.report is not None and not text("report", self.report).strip():
            raise ArgumentValueError("report", f"must name a file but got {self.report!r}.")


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """The ``[task]`` section: a built-in task or a user's ``"module:function"``, checked here
    (the name resolves, a built-in task's params are valid) without loading any data."""

    epochs: int
    name: str = "digits"
    device: str = "auto"
    params: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool | str = False

    def __post_init__(self) -> None:
        text("name", self.name)
        with _as_argument("name"):
            resolve_task(self.name)
        integer("epochs", self.epochs, minimum=1)
        text("device", self.device)
        check_device_name(self.device)
        choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.channels_last, bool):
            raise ArgumentTypeError(
                "channels_last", f"must be true or false but got {self.channels_last!r}."
            )
        check_compile(self.compile)
        if not isinstance(self.params, Mapping):
            raise ArgumentTypeError(
                "params", f"must be a table but got {self.params!r} ({type(self.params).__name__})."
            )
        try:
            task_options(self.name, self.params)
        except ArgumentError as exc:
            raise type(exc)(f"params.{exc.argument}", exc.rule) from exc


@dataclass(frozen=True, kw_only=True)
class PruningSettings:
    """The ``[pruning]`` section but its ``rules``: the base pruner and the memory."""

    base: str = "none"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    min_resource: int = 1
    reduction_factor: int = 3
    memory: str = "dominance"

    def __post_init__(self) -> None:
        choice("base", self.base, PRUNERS)
        integer("n_startup_trials", self.n_startup_trials, minimum=0)
        integer("n_warmup_steps", self.n_warmup_steps, minimum=0)
        integer("min_resource", self.min_resource, minimum=1)
        integer("reduction_factor", self.reduction_factor, minimum=2)
        choice("memory", self.memory, MEMORY_MODES)


@dataclass(frozen=True, kw_only=True)
class RaySettings:
    """The ``[ray]`` section: where and how the Ray backend runs trials (run-time settings: a
    study may change them, or its backend, between runs).

    Args:
        address: the cluster to join (``"auto"``, ``"HOST:PORT"`` of ``ray start --head``,
            or ``"ray://HOST:PORT"``); ``None``: ``RAY_ADDRESS`` if set, else a local Ray.
        cpus_per_trial: CPUs reserved per trial, ``> 0`` (fractions allowed); also the torch
            threads of the trial.
        gpus_per_trial: GPUs per trial, ``>= 0``; ``0.25`` puts four trials on one card.
        max_concurrent: the most trials running at once; ``None``: as many as fit.
        max_failures: times a trial whose worker died is restarted from its last checkpoint.
        reuse_actors: run a trial in the process of a finished one (faster start-up).
        storage_path: where Ray keeps trial folders and checkpoints (a local folder, or a
            shared one / ``s3://`` URI for several nodes); ``None``: Ray's ``~/ray_results``.
    """

    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 0
    reuse_actors: bool = True
    storage_path: str | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not text("address", self.address).strip():
            raise ArgumentValueError("address", f"must not be empty but got {self.address!r}.")
        cpus = real("cpus_per_trial", self.cpus_per_trial, low=0.0, low_open=True)
        object.__setattr__(self, "cpus_per_trial", cpus)
        gpus = real("gpus_per_trial", self.gpus_per_trial, low=0.0)
        object.__setattr__(self, "gpus_per_trial", gpus)
        integer("max_concurrent", self.max_concurrent, minimum=1, optional=True)
        integer("max_failures", self.max_failures, minimum=0)
        flag("reuse_actors", self.reuse_actors)
        if self.storage_path is not None and not text("storage_path", self.storage_path).strip():
            raise ArgumentValueError(
                "storage_path", f"must not be empty but got {self.storage_path!r}."
            )


#: What ``[comparison] budget`` makes equal across schedulers: tuning trials or optimizer steps.
COMPARISON_BUDGETS = ("trials", "steps")


@dataclass(frozen=True, kw_only=True)
class ComparisonSettings:
    """The ``[comparison]`` section: the protocol of ``prl-tune compare`` (``tune`` ignores it,
    and it is no part of a study's identity: a study may change it between runs).

    Args:
        trials: tuning trials per scheduler in each tuning study, ``>= 1``; ``None``
            (default): ``[study] n_trials`` divided among the schedulers, rounded up.
        seeds: fresh seeds each scheduler's best configuration is re-trained with, ``>= 1``
            (default 5).
        studies: independent tuning studies per scheduler (sampler and training seed
            ``[study] seed + repeat``), in ``[1, 1000]`` (default 1): more show how much the
            tuning itself varies.
        baseline: the scheduler the confidence intervals compare against, one of ``[space]
            schedulers``; ``None`` (default): ``"plrs"`` when it is searched, else the first.
        budget: what every scheduler's tuning study gets the same of: ``"trials"`` (default)
            or ``"steps"``, optimizer steps, pruned and shorter trials counted at the steps
            they ran.
        steps: with ``budget = "steps"``, the optimizer steps of each tuning study, ``>= 1``;
            ``None`` (default): what ``trials`` full trials cost (``trials`` x ``[task]
            epochs`` x batches per epoch). Only with ``budget = "steps"``.
    """

    trials: int | None = None
    seeds: int = 5
    studies: int = 1
    baseline: str | None = None
    budget: str = "trials"
    steps: int | None = None

    def __post_init__(self) -> None:
        integer("trials", self.trials, minimum=1, optional=True)
        integer("seeds", self.seeds, minimum=1)
        if integer("studies", self.studies, minimum=1) > EVALUATION_SEED_OFFSET:
            raise ArgumentValueError(
                "studies",
                f"must be <= {EVALUATION_SEED_OFFSET} (the evaluation seeds start at seed + "
                f"{EVALUATION_SEED_OFFSET}, above every tuning seed) but got {self.studies}.",
            )
        if self.baseline is not None:
            text("baseline", self.baseline)
        choice("budget", self.budget, COMPARISON_BUDGETS)
        integer("steps", self.steps, minimum=1, optional=True)
        if self.steps is not None and self.budget != "steps":
            raise ArgumentValueError(
                "steps",
                f'is the step budget, read only with budget = "steps", but got {self.steps} '
                f"with budget = {self.budget!r}.",
            )

    def step_budget(self, trials: int, trial_steps: int) -> int:
        """The optimizer steps of each tuning study: ``steps``, else ``trials`` full trials of
        ``trial_steps`` each."""
        return self.steps if self.steps is not None else trials * trial_steps

    def tuning_trials(self, n_trials: int, schedulers: tuple[str, ...]) -> int:
        """Trials per scheduler in each tuning study: ``trials``, else ``n_trials`` shared out."""
        return self.trials if self.trials is not None else -(-n_trials // len(schedulers))

    def baseline_of(self, schedulers: tuple[str, ...]) -> str:
        """The baseline scheduler: ``baseline``, else ``"plrs"`` if searched, else the first."""
        if self.baseline is not None:
            return self.baseline
        return "plrs" if "plrs" in schedulers else schedulers[0]

    def evaluation_seeds(self, seed: int) -> tuple[int, ...]:
        """The evaluation seeds: ``seed + 1000 + k``, ``k < seeds``."""
        return tuple(seed + EVALUATION_SEED_OFFSET + k for k in range(self.seeds))

    def tuning_seeds(self, seed: int) -> tuple[int, ...]:
        """The tuning studies' seeds: ``seed + repeat``, ``repeat < studies``."""
        return tuple(seed + repeat for repeat in range(self.studies))


@contextmanager
def _as_argument(name: str) -> Iterator[None]:
    """Give an ``ArgumentError`` raised inside the argument name ``name``."""
    try:
        yield
    except ArgumentError as exc:
        raise type(exc)(name, exc.rule) from exc


def _defaults(cls: type) -> dict[str, Any]:
    """Each field's default (``None`` for a required one) of a settings dataclass."""
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
        else:
            defaults[f.name] = None
    return defaults


# The file's layout: section -> key -> default (None: unset; TOML has no null).
_LAYOUT: dict[str, dict[str, Any]] = {
    "study": _defaults(StudySettings),
    "task": _defaults(TaskSpec),
    "optimizer": {k: v for k, v in _defaults(OptimizerConfig).items() if k != "eps"},
    "space": {
        "schedulers": ["plrs"],
        "lr_max": [1e-3, 1.0],
        "range_test_span": 3.0,
        "lr_min_ratio": None,
        "lr_min": None,
        "lr": [1e-3, 1.0],
        "warmup_steps": 0,
        "allocation": "equal",
        "warm_start": "range-test",
        "warm_start_span": 64.0,
        # PLRS's hidden choices; unset (None) is the paper's: a uniform draw at every step.
        "plrs_draw_every": None,
        "plrs_distribution": None,
        "plrs_beta_shape": None,
    },
    "pruning": {**_defaults(PruningSettings), "rules": True},
    "ray": _defaults(RaySettings),
    "comparison": _defaults(ComparisonSettings),
}
_REQUIRED = {"study": ("name", "n_trials"), "task": ("epochs",)}
# Keys of a new study's warm start; a study stored before they existed is left without one.
_WARM_START_KEYS = (("space", "warm_start"), ("space", "warm_start_span"))
# Sections left out of the canonical dict when the file has none.
_OPTIONAL_SECTIONS = ("comparison",)
# Sections that are no part of a study's identity (a study may change them between runs).
_RUN_TIME_SECTIONS = ("ray", "comparison")
# Keys a study may change between runs (with all of ``[ray]``): where and how it runs.
_RUN_TIME_STUDY_KEYS = (
    "n_trials",
    "workers",
    "worker_restarts",
    "workers_per_gpu",
    "threads",
    "storage",
    "backend",
    "report",
)


@dataclass(frozen=True)
class StudySpec:
    """A study, parsed once: frozen objects that every later step trusts.

    Build it with :func:`load_spec` (a TOML file) or :meth:`from_dict` (the same dict, e.g. in a
    worker process). :meth:`to_dict` gives the canonical dict (defaults filled in) that is stored
    with the study and compared on resume.

    Args:
        study: ``[study]``.
        task: ``[task]``.
        optimizer: ``[optimizer]``.
        space: ``[space]``: a :class:`~prl_tune.space.SchedulerSpace`, or a
            :class:`~prl_tune.space.PendingRangeTest` while ``lr_max = "range-test"`` is not
            resolved (:meth:`with_lr_max`).
        warmup_steps: ``[space] warmup_steps`` of PLRS.
        allocation: ``[space] allocation`` of trials to several schedulers.
        rules: ``[pruning] rules``.
        pruning: the rest of ``[pruning]``.
        ray: ``[ray]``, the Ray backend's run-time settings.
        comparison: ``[comparison]``, the protocol of ``prl-tune compare`` (``None``: the file
            has no such section; ``compare`` then takes its defaults).
        data: the canonical dict.
        source: where the spec came from, for messages.
    """

    study: StudySettings
    task: TaskSpec
    optimizer: OptimizerConfig
    space: SchedulerSpace | PendingRangeTest = field(compare=False)
    warmup_steps: int
    allocation: str
    rules: StabilityRules
    pruning: PruningSettings
    ray: RaySettings
    comparison: ComparisonSettings | None
    data: Mapping[str, Any] = field(repr=False)
    source: str = field(default="<dict>", compare=False)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def storage(self) -> str:
        return self.study.storage

    @property
    def direction(self) -> str:
        return str(self.study.direction)

    @property
    def metric(self) -> str:
        return self.study.metric

    @property
    def n_trials(self) -> int:
        return self.study.n_trials

    @property
    def workers(self) -> int:
        return self.study.workers

    @property
    def seed(self) -> int:
        return self.study.seed

    @property
    def threads(self) -> int:
        """Torch CPU threads of each trial: ``[study] threads``; by default this process's
        torch thread count (``torch.get_num_threads()``, which ``OMP_NUM_THREADS`` sets),
        capped so that the workers share the machine's cores (at least one)."""
        if self.study.threads is not None:
            return self.study.threads
        import torch

        shared = (os.cpu_count() or 1) // self.workers
        return max(1, min(torch.get_num_threads(), shared))

    @property
    def range_test_span(self) -> float:
        """``[space] range_test_span``: a range test's ``lr_max`` range is
        ``[suggested / span, suggested]``."""
        return float(self.data["space"]["range_test_span"])

    @property
    def schedulers(self) -> tuple[str, ...]:
        return tuple(self.space.schedulers)

    @property
    def warm_start_span(self) -> float:
        """``[space] warm_start_span``: with a warm start, search ``lr_max`` in a window this
        many times wide around the first trial's (0: the file's whole range)."""
        return float(self.data["space"]["warm_start_span"])

    def with_lr_max_range(self, lr_max: tuple[float, float]) -> StudySpec:
        """The spec whose PLRS ``lr_max`` is searched in ``lr_max`` (a concrete space only)."""
        if not isinstance(self.space, SchedulerSpace):
            raise SpecError("[space] lr_max: a pending range test has no range to narrow yet.")
        plrs = self.space.plrs.with_lr_max(lr_max)
        space = SchedulerSpace(self.space.schedulers, plrs=plrs, lr=self.space.lr)
        data = self.to_dict()
        data["space"]["lr_max"] = list(plrs.lr_max)
        return dataclasses.replace(self, space=space, data=data)

    @property
    def warm_start(self) -> str:
        """``[space] warm_start``: ``"none"``, or ``"range-test"`` (the study's first trials
        are placed by its LR range test; see ``prl_tune.hosts``)."""
        return str(self.data["space"]["warm_start"])

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-ready dict of every section (defaults filled in)."""
        result: dict[str, Any] = json.loads(json.dumps(self.data))
        return result

    def with_study(self, **changes: Any) -> StudySpec:
        """A copy with fields of ``[study]`` changed (checked by ``StudySettings``)."""
        return self._with_section("study", changes)

    def with_ray(self, **changes: Any) -> StudySpec:
        """A copy with fields of ``[ray]`` changed (checked by ``RaySettings``)."""
        return self._with_section("ray", changes)

    def _with_section(self, section: str, changes: Mapping[str, Any]) -> StudySpec:
        with _section(section):
            settings = dataclasses.replace(getattr(self, section), **changes)
        data = self.to_dict()
        data[section].update(changes)
        return dataclasses.replace(self, data=data, **{section: settings})

    def with_lr_max(self, lr_max: tuple[float, float]) -> StudySpec:
        """The spec with a concrete space for a pending range test's ``lr_max`` range."""
        if not isinstance(self.space, PendingRangeTest):
            raise SpecError(
                f"[space] lr_max: is {list(self.space.plrs.lr_max)}, not {RANGE_TEST!r}."
            )
        try:
            space = self.space.resolve(lr_max)
        except ArgumentError as exc:
            raise SpecError(
                f"[space] {exc.argument}: {exc.rule} (lr_max {list(lr_max)} from the LR range test)"
            ) from exc
        data = self.to_dict()
        data["space"]["lr_max"] = list(lr_max)
        return dataclasses.replace(self, space=space, data=data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> StudySpec:
        """Parse a study file's dict; raises :class:`SpecError` naming the first bad field."""
        sections = _filled_sections(data, source)
        with _section("study"):
            study = StudySettings(**sections["study"])
        sections["study"]["direction"] = study.direction
        with _section("task"):
            task = TaskSpec(**sections["task"])
        with _section("optimizer"):
            optimizer = OptimizerConfig(**sections["optimizer"])
        pruning_fields = dict(sections["pruning"])
        rules_field = pruning_fields.pop("rules")
        with _section("pruning"):
            pruning = PruningSettings(**pruning_fields)
        rules, sections["pruning"]["rules"] = _parse_rules(rules_field)
        space_fields = sections["space"]
        with _section("space"):
            space = _parse_space(space_fields)
            warmup = integer("warmup_steps", space_fields["warmup_steps"], minimum=0)
            allocation = choice("allocation", space_fields["allocation"], ALLOCATIONS)
            choice("warm_start", space_fields["warm_start"], WARM_STARTS)
            span = real("warm_start_span", space_fields["warm_start_span"], low=0.0)
            if 0.0 < span < 1.0:
                raise ArgumentValueError(
                    "warm_start_span",
                    f"must be 0 (no window: the whole lr_max range) or >= 1 but got {span!r}.",
                )
        with _section("ray"):
            ray = RaySettings(**sections["ray"])
        comparison = None
        if "comparison" in sections:
            with _section("comparison"):
                comparison = _parse_comparison(sections["comparison"], tuple(space.schedulers))
        canonical = json.loads(json.dumps(sections))
        return cls(
            study,
            task,
            optimizer,
            space,
            warmup,
            allocation,
            rules,
            pruning,
            ray,
            comparison,
            canonical,
            source,
        )


@contextmanager
def _section(section: str) -> Iterator[None]:
    """Turn an ``ArgumentError`` raised while building ``[section]`` into a ``SpecError``."""
    try:
        yield
    except ArgumentError as exc:
        where, _, key = exc.argument.rpartition(".")
        label = f"[{section}.{where}] {key}" if where else f"[{section}] {key}"
        raise SpecError(f"{label}: {exc.rule}") from exc


def _filled_sections(data: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Every section of the layout with its keys checked, defaults filled in, ``None`` unset."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: must be a table of sections but got {data!r}.")
    unknown = sorted(set(data) - set(_LAYOUT))
    if unknown:
        raise SpecError(f"[{unknown[0]}]: unknown section; the sections are {sorted(_LAYOUT)}.")
    sections: dict[str, dict[str, Any]] = {}
    for section, layout in _LAYOUT.items():
        raw = data.get(section)
        if raw is None and section in _OPTIONAL_SECTIONS:
            continue
        if raw is None and section in _REQUIRED:
            raise SpecError(f"[{section}]: required section is missing.")
        if raw is not None and not isinstance(raw, Mapping):
            raise SpecError(f"[{section}]: must be a table but got {raw!r}.")
        raw = raw or {}
        with _section(section):
            known_keys(raw, layout)
        for key in _REQUIRED.get(section, ()):
            if raw.get(key) is None:
                raise SpecError(f"[{section}] {key}: required key is missing.")
        sections[section] = {
            key: raw[key] if raw.get(key) is not None else default
            for key, default in layout.items()
        }
    if isinstance(sections["space"]["schedulers"], str):  # a single name is a list of one
        sections["space"]["schedulers"] = [sections["space"]["schedulers"]]
    return sections


def _parse_rules(value: Any) -> tuple[StabilityRules, Any]:
    """``true`` (default thresholds), ``false`` (only the non-finite stop) or a table; returns
    the rules and the canonical form of the value."""
    if value is True:
        return StabilityRules(), True
    if value is False:  # TOML has no null: ``false`` switches off an optional rule
        return StabilityRules.from_mapping(dict.fromkeys(OPTIONAL_RULES)), False
    if not isinstance(value, Mapping):
        raise SpecError(
            f"[pruning] rules: must be true, false or a table of thresholds but got {value!r}."
        )
    table = {k: None if v is False and k in OPTIONAL_RULES else v for k, v in value.items()}
    try:
        return StabilityRules.from_mapping(table), table
    except (TypeError, ValueError) as exc:
        raise SpecError(f"[pruning.rules] {exc}") from exc


def _parse_comparison(fields: Mapping[str, Any], schedulers: tuple[str, ...]) -> ComparisonSettings:
    comparison = ComparisonSettings(**fields)
    if comparison.baseline is not None and comparison.baseline not in schedulers:
        raise ArgumentValueError(
            "baseline",
            f"must be one of the [space] schedulers {list(schedulers)} but got "
            f"{comparison.baseline!r}.",
        )
    return comparison


#: The ``[space]`` keys of PLRS's hidden choices, by their ``PLRSSpace`` argument.
_PLRS_CHOICE_KEYS = MappingProxyType(
    {
        "draw_every": "plrs_draw_every",
        "distribution": "plrs_distribution",
        "beta_shape": "plrs_beta_shape",
    }
)


def _parse_space(fields: Mapping[str, Any]) -> SchedulerSpace | PendingRangeTest:
    with _renamed(_PLRS_CHOICE_KEYS):
        return _parse_space_fields(fields)


def _parse_space_fields(fields: Mapping[str, Any]) -> SchedulerSpace | PendingRangeTest:
    choices = {
        arg: fields[key] for arg, key in _PLRS_CHOICE_KEYS.items() if fields[key] is not None
    }
    lr_max = fields["lr_max"]
    if lr_max == RANGE_TEST:
        return PendingRangeTest(
            span=fields["range_test_span"],
            schedulers=fields["schedulers"],
            lr=fields["lr"],
            lr_min_ratio=fields["lr_min_ratio"],
            lr_min=fields["lr_min"],
            **choices,
        )
    if isinstance(lr_max, str):
        raise ArgumentValueError(
            "lr_max", f"must be a [low, high] list, a number or {RANGE_TEST!r} but got {lr_max!r}."
        )
    PendingRangeTest.check_span(fields["range_test_span"])
    plrs = PLRSSpace(lr_max, fields["lr_min_ratio"], lr_min=fields["lr_min"], **choices)
    return SchedulerSpace(fields["schedulers"], plrs=plrs, lr=fields["lr"])


@contextmanager
def _renamed(names: Mapping[str, str]) -> Iterator[None]:
    """Give an ``ArgumentError`` about an argument in ``names`` its name there (its key)."""
    try:
        yield
    except ArgumentError as exc:
        if exc.argument not in names:
            raise
        raise type(exc)(names[exc.argument], exc.rule) from exc


def load_spec(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read and parse a study file; ``overrides`` maps ``"section.key"`` to a new value."""
    file = Path(path)
    try:
        text_ = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"study file {str(path)!r} cannot be read: {exc.strerror}.") from exc
    try:
        data = tomllib.loads(text_)
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


def parse_override(text_: str) -> tuple[str, Any]:
    """Parse ``SECTION.KEY=VALUE`` (VALUE in TOML syntax; a bare word is a string)."""
    key, sep, raw = text_.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set: must be SECTION.KEY=VALUE but got {text_!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


def spec_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields that differ between two ``to_dict()`` forms, ignoring run-time-only keys
    (``[ray]``, ``[comparison]`` and where and how ``[study]`` runs). A key that one form lacks
    (a study stored before the key existed) counts as its default, except the warm start's
    keys: a study stored without them runs on without a warm start, whatever the file says
    (the warm start only shapes a new study)."""
    ignore = {("study", key) for key in _RUN_TIME_STUDY_KEYS}
    diffs = []
    for section in sorted((set(stored) | set(current)) - set(_RUN_TIME_SECTIONS)):
        a, b = stored.get(section, {}), current.get(section, {})
        defaults = _LAYOUT.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section, key) in ignore or ((section, key) in _WARM_START_KEYS and key not in a):
                continue
            old, new = a.get(key, defaults.get(key)), b.get(key, defaults.get(key))
            if old != new:
                diffs.append(f"[{section}] {key}: stored {old!r}, now {new!r}")
    return diffs
