"""The searchable PLRS bounds: one definition, rendered for Optuna and for Ray Tune."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prl_tune._checks import ArgumentValueError, number_range, text

if TYPE_CHECKING:
    import optuna


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
        prefix: prepended to the parameter names (``SchedulerSpace`` uses ``"plrs_"``).
    """

    def __init__(
        self,
        lr_max: tuple[float, float] | float = (1e-3, 1.0),
        lr_min_ratio: tuple[float, float] | float | None = (0.0, 1.0),
        *,
        lr_min: tuple[float, float] | float | None = None,
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
        self.prefix = text("prefix", prefix)

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

    @property
    def param_names(self) -> tuple[str, str]:
        """The two searched parameter names with the prefix: ``lr_max`` and ``lr_min_ratio``
        (or ``lr_min_frac`` when an ``lr_min`` range is given)."""
        second = "lr_min_ratio" if self.lr_min is None else "lr_min_frac"
        return (f"{self.prefix}lr_max", f"{self.prefix}{second}")

    @property
    def _second_range(self) -> tuple[float, float]:
        return self.lr_min_ratio if self.lr_min is None else (0.0, 1.0)

    def optuna_distributions(self) -> dict[str, optuna.distributions.FloatDistribution]:
        """The space as Optuna distributions (for ``study.ask(fixed_distributions)``)."""
        from optuna.distributions import FloatDistribution

        name_max, name_ratio = self.param_names
        return {
            name_max: FloatDistribution(*self.lr_max, log=True),
            name_ratio: FloatDistribution(*self._second_range),
        }

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, float]:
        """Sample the bounds from an Optuna trial; returns ``{"lr_min": ..., "lr_max": ...}``."""
        name_max, name_ratio = self.param_names
        config = {
            name_max: trial.suggest_float(name_max, *self.lr_max, log=True),
            name_ratio: trial.suggest_float(name_ratio, *self._second_range),
        }
        params = self.decode(config)
        record_bounds(trial, params)
        return params

    def ray_param_space(self) -> dict[str, Any]:
        """The same space as a Ray Tune ``param_space`` (``tune.loguniform`` / ``tune.uniform``)."""
        from prl_tune._imports import import_ray_tune

        tune = import_ray_tune()
        name_max, name_ratio = self.param_names
        return {
            name_max: _ray_float(tune, self.lr_max, log=True),
            name_ratio: _ray_float(tune, self._second_range, log=False),
        }

    def decode(self, config: Mapping[str, Any]) -> dict[str, float]:
        """Map a sampled config (Optuna params or a Ray Tune config) to ``lr_min``/``lr_max``."""
        name_max, name_ratio = self.param_names
        missing = [n for n in (name_max, name_ratio) if n not in config]
        if missing:
            raise KeyError(f"config is missing {missing} (a PLRSSpace config needs both).")
        lr_max = float(config[name_max])
        position = min(max(float(config[name_ratio]), 0.0), 1.0)
        if self.lr_min is None:
            return {"lr_min": position * lr_max, "lr_max": lr_max}
        # An explicit lr_min range: the position is log-linear inside [low, min(high, lr_max)].
        low, high = self.lr_min[0], min(self.lr_min[1], lr_max)
        lr_min = low * (high / low) ** position if low > 0 else position * high
        return {"lr_min": min(lr_min, lr_max), "lr_max": lr_max}

    def __repr__(self) -> str:
        second = (
            f"lr_min_ratio={self.lr_min_ratio}"
            if self.lr_min is None
            else (f"lr_min={self.lr_min}")
        )
        return f"PLRSSpace(lr_max={self.lr_max}, {second}, prefix={self.prefix!r})"


def record_bounds(trial: optuna.trial.BaseTrial, params: Mapping[str, Any]) -> None:
    """Store the decoded schedule parameters on the trial as user attributes."""
    for key, value in params.items():
        trial.set_user_attr(key, value)
    if "lr_min" in params and "lr_max" in params:
        trial.set_user_attr("lr_center", (params["lr_min"] + params["lr_max"]) / 2)


def _ray_float(tune: Any, bounds: tuple[float, float], *, log: bool) -> Any:
    low, high = bounds
    if low == high:
        return low
    return tune.loguniform(low, high) if log else tune.uniform(low, high)
