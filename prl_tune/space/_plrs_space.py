"""The searchable PLRS bounds: one definition, rendered for Optuna and for Ray Tune."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prl_tune._checks import ArgumentValueError, number_range, real, text
from prl_tune.schedulers import DISTRIBUTIONS, check_draw_every

if TYPE_CHECKING:
    import optuna

#: The paper's choices: what a space that does not search them leaves out of its params.
PAPER_DRAW_EVERY = "step"
PAPER_DISTRIBUTION = "uniform"
DEFAULT_BETA_SHAPE = 2.0


class PLRSSpace:
    """Search space of the PLRS bounds ``0 <= lr_min <= lr_max``.

    The space is parametrized as ``lr_max`` (log-uniform) and ``lr_min_ratio = lr_min / lr_max``
    (uniform), so ``lr_min <= lr_max`` holds by construction, no sample is ever rejected, and both
    distributions are fixed across trials (multivariate TPE and GP samplers model them jointly).
    Why this shape: the paper picks ``Lmax`` first (just below where the loss blows up, a scale
    spanning decades, hence log) and then ``Lmin`` as a fraction of it; stability depends almost
    only on ``lr_max`` and the width of the band only on the ratio, so the two axes separate the two
    effects. The comparison with other parametrizations is in ``benchmarks/README.md``.

    Every trial that :meth:`suggest` sees gets the user attributes ``lr_min``, ``lr_max`` and
    ``lr_center``, so both bounds are visible on every stored trial.

    PLRS's two hidden choices, the draw frequency and the distribution of a draw, are the
    paper's (a uniform draw at every step) unless given: one value fixes a choice, a list of
    two or more searches it as a categorical parameter (``draw_every``, ``distribution``, with
    the prefix) on Optuna and Ray alike. A choice other than the paper's is in the decoded
    params (and on the trial); the paper's own is left out, so a space that does not touch them
    decodes to exactly ``{"lr_min", "lr_max"}``.

    Example:
        >>> import optuna
        >>> space = PLRSSpace(lr_max=(1e-3, 1.0))
        >>> study = optuna.create_study()
        >>> params = space.suggest(study.ask())
        >>> 0 <= params["lr_min"] <= params["lr_max"]
        True

    Args:
        lr_max: ``(low, high)`` range of ``lr_max``, searched log-uniformly; ``0 < low < high``.
            A single number fixes ``lr_max``. Default ``(1e-3, 1.0)``.
        lr_min_ratio: ``(low, high)`` range of ``lr_min / lr_max`` inside ``[0, 1]``, searched
            uniformly. A single number fixes the ratio (``1.0`` is a constant LR). Default
            ``(0.0, 1.0)``.
        lr_min: instead of ``lr_min_ratio``, an absolute ``(low, high)`` range of ``lr_min``; then
            the second parameter ``lr_min_frac`` in ``[0, 1]`` places ``lr_min`` log-linearly in
            ``[low, min(high, lr_max)]`` (still no rejections). Requires ``lr_max``'s low end
            ``>= low``.
        draw_every: how often PLRS draws: ``"step"`` (the paper, default), ``"epoch"``, or an
            int ``k`` (every ``k`` steps); a list of them is searched.
        distribution: the distribution of a draw on ``[lr_min, lr_max]``: ``"uniform"`` (the
            paper, default), ``"log-uniform"`` or ``"beta"``; a list of them is searched.
            ``"log-uniform"`` needs ``lr_min > 0``, so it refuses a space whose ``lr_min`` is
            always 0.
        beta_shape: the shape ``a > 0`` of the ``Beta(a, a)`` of a ``"beta"`` draw, fixed
            (default ``2.0``, left out of the params).
        prefix: prepended to the parameter names (``SchedulerSpace`` uses ``"plrs_"``).
    """

    def __init__(
        self,
        lr_max: tuple[float, float] | float = (1e-3, 1.0),
        lr_min_ratio: tuple[float, float] | float | None = (0.0, 1.0),
        *,
        lr_min: tuple[float, float] | float | None = None,
        draw_every: str | int | Sequence[str | int] = PAPER_DRAW_EVERY,
        distribution: str | Sequence[str] = PAPER_DISTRIBUTION,
        beta_shape: float = DEFAULT_BETA_SHAPE,
        prefix: str = "",
    ) -> None:
        self.lr_max = number_range("lr_max", lr_max, low=0.0)
        self.lr_min_ratio, self.lr_min = self.check_lower_bound(lr_min_ratio, lr_min)
        if self.lr_min is not None and self.lr_max[0] < self.lr_min[0]:
            raise ArgumentValueError(
                "lr_max",
                f"must not reach below lr_min (every lr_max needs an lr_min <= it): low end of "
                f"lr_max {self.lr_max[0]:g} < low end of lr_min {self.lr_min[0]:g}.",
            )
        self.draw_every, self.distribution, self.beta_shape = self.check_draw(
            draw_every, distribution, beta_shape
        )
        if "log-uniform" in self.distribution:
            self.check_log_uniform("distribution")
        self.prefix = text("prefix", prefix)

    @staticmethod
    def check_draw(
        draw_every: Any = PAPER_DRAW_EVERY,
        distribution: Any = PAPER_DISTRIBUTION,
        beta_shape: Any = DEFAULT_BETA_SHAPE,
    ) -> tuple[tuple[str | int, ...], tuple[str, ...], float]:
        """The checked choices ``(draw_every, distribution, beta_shape)``: each of the first two
        a tuple of distinct choices (one: fixed; more: searched)."""
        given = _choices("draw_every", draw_every)
        every = tuple(check_draw_every("draw_every", v) for v in given)
        names = tuple(_choices("distribution", distribution))
        for value in names:
            if value not in DISTRIBUTIONS:
                raise ArgumentValueError(
                    "distribution", f"each must be one of {list(DISTRIBUTIONS)} but got {value!r}."
                )
        if len(set(every)) != len(every):
            raise ArgumentValueError(
                "draw_every", f"must not repeat a choice ('step' is 1) but got {given!r}."
            )
        if len(set(names)) != len(names):
            raise ArgumentValueError(
                "distribution", f"must not repeat a choice but got {list(names)!r}."
            )
        shape = float(real("beta_shape", beta_shape, low=0.0, low_open=True))
        return every, names, shape

    def check_log_uniform(self, argument: str, what: str = "'log-uniform'") -> None:
        """Refuse a log-uniform draw (``what``, named ``argument``) when ``lr_min`` is always
        0."""
        always_zero = self.lr_min_ratio[1] == 0.0 if self.lr_min is None else self.lr_min[1] == 0
        if always_zero:
            fixed = "lr_min_ratio" if self.lr_min is None else "lr_min"
            shown = list(getattr(self, fixed))
            raise ArgumentValueError(
                argument,
                f"{what} needs lr_min > 0 (log(0) is undefined) but got {fixed} {shown!r}, "
                "which makes lr_min always 0.",
            )

    @staticmethod
    def check_lower_bound(
        lr_min_ratio: tuple[float, float] | float | None = (0.0, 1.0),
        lr_min: tuple[float, float] | float | None = None,
    ) -> tuple[tuple[float, float], tuple[float, float] | None]:
        """The checked ``(lr_min_ratio, lr_min)`` ranges (``None`` ratio: the default ``(0, 1)``).

        The rules of the lower bound on their own, before ``lr_max`` is known (a study whose
        ``lr_max`` comes from the LR range test checks them at load time with this).
        """
        ratio = number_range(
            "lr_min_ratio",
            (0.0, 1.0) if lr_min_ratio is None else lr_min_ratio,
            low=0.0,
            high=1.0,
            allow_low=True,
        )
        if lr_min is None:
            return ratio, None
        if ratio != (0.0, 1.0):
            raise ArgumentValueError(
                "lr_min",
                f"and lr_min_ratio are alternatives; give one, not both (got lr_min={lr_min!r}, "
                f"lr_min_ratio={lr_min_ratio!r}).",
            )
        return ratio, number_range("lr_min", lr_min, low=0.0)

    def with_prefix(self, prefix: str) -> PLRSSpace:
        """The same space with another parameter-name prefix (nothing is checked again)."""
        if text("prefix", prefix) == self.prefix:
            return self
        renamed = copy.copy(self)
        renamed.prefix = prefix
        return renamed

    def with_lr_max(self, lr_max: tuple[float, float]) -> PLRSSpace:
        """The same space with another ``lr_max`` range, ``0 < low <= high``."""
        changed = copy.copy(self)
        changed.lr_max = number_range("lr_max", list(lr_max), low=0.0)
        return changed

    @property
    def param_names(self) -> tuple[str, str]:
        """The two searched parameter names with the prefix: ``lr_max`` and ``lr_min_ratio``
        (or ``lr_min_frac`` when an ``lr_min`` range is given)."""
        second = "lr_min_ratio" if self.lr_min is None else "lr_min_frac"
        return (f"{self.prefix}lr_max", f"{self.prefix}{second}")

    @property
    def _second_range(self) -> tuple[float, float]:
        return self.lr_min_ratio if self.lr_min is None else (0.0, 1.0)

    @property
    def choices(self) -> dict[str, tuple[str | int, ...]]:
        """The searched choices by parameter name with the prefix (``draw_every``,
        ``distribution``): those given a list of two or more."""
        found: dict[str, tuple[str | int, ...]] = {}
        for key, chosen in (("draw_every", self.draw_every), ("distribution", self.distribution)):
            if len(chosen) > 1:
                found[f"{self.prefix}{key}"] = chosen
        return found

    @property
    def choice_params(self) -> frozenset[str]:
        """The keys beyond ``lr_min``/``lr_max`` that :meth:`decode` may return (a scheduler
        that takes this space must accept them)."""
        keys = set()
        if self.draw_every != (PAPER_DRAW_EVERY,):
            keys.add("draw_every")
        if self.distribution != (PAPER_DISTRIBUTION,):
            keys.add("distribution")
        if self.beta_shape != DEFAULT_BETA_SHAPE:
            keys.add("beta_shape")
        return frozenset(keys)

    def optuna_distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """The space as Optuna distributions (for ``study.ask(fixed_distributions)``)."""
        from optuna.distributions import (
            BaseDistribution,
            CategoricalDistribution,
            FloatDistribution,
        )

        name_max, name_ratio = self.param_names
        distributions: dict[str, BaseDistribution] = {
            name_max: FloatDistribution(*self.lr_max, log=True),
            name_ratio: FloatDistribution(*self._second_range),
        }
        for name, chosen in self.choices.items():
            distributions[name] = CategoricalDistribution(list(chosen))
        return distributions

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample the bounds (and the searched choices) from an Optuna trial; returns
        ``{"lr_min": ..., "lr_max": ...}`` and any choice other than the paper's."""
        name_max, name_ratio = self.param_names
        config: dict[str, Any] = {
            name_max: trial.suggest_float(name_max, *self.lr_max, log=True),
            name_ratio: trial.suggest_float(name_ratio, *self._second_range),
        }
        for name, chosen in self.choices.items():
            config[name] = trial.suggest_categorical(name, list(chosen))
        params = self.decode(config)
        record_bounds(trial, params)
        return params

    def params_for(self, lr_min: float, lr_max: float) -> dict[str, float]:
        """The searched parameters (by name, with the prefix) that :meth:`decode` maps to
        bounds as close as the space allows to ``[lr_min, lr_max]``: ``lr_max`` clipped into
        its range, and the ratio ``lr_min / lr_max`` clipped into ``lr_min_ratio`` (or, with an
        ``lr_min`` range, ``lr_min`` clipped into what the clipped ``lr_max`` allows). For a
        study's ``enqueue_trial``; the searched choices are left to the sampler."""
        name_max, name_ratio = self.param_names
        low, high = self.lr_max
        top = min(max(float(lr_max), low), high)
        if self.lr_min is None:
            ratio_low, ratio_high = self.lr_min_ratio
            second = min(max(float(lr_min) / float(lr_max), ratio_low), ratio_high)
        else:
            floor, ceiling = self.lr_min[0], min(self.lr_min[1], top)
            bottom = min(max(float(lr_min), floor), ceiling)
            if floor > 0 and ceiling > floor:
                second = math.log(bottom / floor) / math.log(ceiling / floor)
            else:
                second = bottom / ceiling if ceiling > 0 else 0.0
        return {name_max: top, name_ratio: min(max(second, 0.0), 1.0)}

    def ray_param_space(self) -> dict[str, Any]:
        """The same space as a Ray Tune ``param_space`` (``tune.loguniform`` / ``tune.uniform``)."""
        from prl_tune._imports import import_ray_tune

        tune = import_ray_tune()
        name_max, name_ratio = self.param_names
        space = {
            name_max: _ray_float(tune, self.lr_max, log=True),
            name_ratio: _ray_float(tune, self._second_range, log=False),
        }
        for name, chosen in self.choices.items():
            space[name] = tune.choice(list(chosen))
        return space

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Map a sampled config (Optuna params or a Ray Tune config) to ``lr_min``/``lr_max``,
        with ``draw_every``, ``distribution`` and ``beta_shape`` where not the paper's."""
        name_max, name_ratio = self.param_names
        missing = [n for n in (name_max, name_ratio, *self.choices) if n not in config]
        if missing:
            raise KeyError(f"config is missing {missing} (a PLRSSpace config needs them all).")
        lr_max = float(config[name_max])
        position = min(max(float(config[name_ratio]), 0.0), 1.0)
        if self.lr_min is None:
            params: dict[str, Any] = {"lr_min": position * lr_max, "lr_max": lr_max}
        else:
            # An explicit lr_min range: the position is log-linear in [low, min(high, lr_max)].
            low, high = self.lr_min[0], min(self.lr_min[1], lr_max)
            lr_min = low * (high / low) ** position if low > 0 else position * high
            params = {"lr_min": min(lr_min, lr_max), "lr_max": lr_max}
        for key in ("draw_every", "distribution"):
            if key not in self.choice_params:
                continue
            chosen: tuple[str | int, ...] = getattr(self, key)
            value = config[f"{self.prefix}{key}"] if len(chosen) > 1 else chosen[0]
            if value not in chosen:
                raise ValueError(
                    f"{self.prefix}{key} must be one of {list(chosen)} but got {value!r}."
                )
            params[key] = value
        if "beta_shape" in self.choice_params:
            params["beta_shape"] = self.beta_shape
        return params

    def __repr__(self) -> str:
        second = (
            f"lr_min_ratio={self.lr_min_ratio}"
            if self.lr_min is None
            else (f"lr_min={self.lr_min}")
        )
        draw = "".join(
            f", {key}={value!r}"
            for key, value, paper in (
                ("draw_every", list(self.draw_every), [PAPER_DRAW_EVERY]),
                ("distribution", list(self.distribution), [PAPER_DISTRIBUTION]),
                ("beta_shape", self.beta_shape, DEFAULT_BETA_SHAPE),
            )
            if value != paper
        )
        return f"PLRSSpace(lr_max={self.lr_max}, {second}{draw}, prefix={self.prefix!r})"


def record_bounds(trial: optuna.trial.BaseTrial, params: Mapping[str, Any]) -> None:
    """Store the decoded schedule parameters on the trial as user attributes."""
    for key, value in params.items():
        trial.set_user_attr(key, value)
    if "lr_min" in params and "lr_max" in params:
        trial.set_user_attr("lr_center", (params["lr_min"] + params["lr_max"]) / 2)


def _choices(name: str, value: Any) -> list[Any]:
    """A list of choices as a list (not empty); anything else as a list of one (checked by
    the caller)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ArgumentValueError(name, f"must not be an empty list but got {value!r}.")
        return list(value)
    return [value]


def _ray_float(tune: Any, bounds: tuple[float, float], *, log: bool) -> Any:
    low, high = bounds
    if low == high:
        return low
    return tune.loguniform(low, high) if log else tune.uniform(low, high)
