"""A wider space for fair comparisons: the scheduler itself is a categorical choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, names, number_range
from prl_tune.schedulers import SCHEDULER_NAMES, SCHEDULERS
from prl_tune.space._plrs_space import PLRSSpace, _ray_float, record_bounds

if TYPE_CHECKING:
    import optuna

#: The paper's schedulers, the default choice: PLRS and its five baselines (the registry's
#: names but the PLRS variants, which a space searches only when named). ``plrs`` and its
#: variants are searched by ``PLRSSpace``, every other one by its peak learning rate ``lr``.
ALL_SCHEDULERS = tuple(name for name in SCHEDULER_NAMES if SCHEDULERS[name].variant_of is None)


class SchedulerSpace:
    """Search over the scheduler (``plrs`` and the paper's baselines) and its own parameters.

    The choice is the categorical parameter ``scheduler``; each scheduler's parameters are
    conditional on it and carry its name as a prefix (``plrs_lr_max``, ``plrs_lr_min_ratio``,
    ``cosine_lr``, ...), so every baseline gets the same kind of search over its peak LR that PLRS
    gets over its bounds — the equal tuning budget the paper's comparison lacked. With a single
    scheduler no categorical parameter is created.

    For Ray Tune the space is flat (every scheduler's parameters are sampled, :meth:`decode` keeps
    the active ones), which every Ray searcher supports, unlike nested conditional spaces.

    Example:
        >>> import optuna
        >>> space = SchedulerSpace(["plrs", "cosine"])
        >>> params = space.suggest(optuna.create_study().ask())
        >>> params["scheduler"] in ("plrs", "cosine")
        True

    The PLRS variants (``plrs-epoch``, ``plrs-beta``, ...) share ``plrs``'s bounds parameters;
    a variant fixes one of PLRS's choices, so the ``plrs`` space may not set that choice too.

    Args:
        schedulers: the names to choose from (default: the six of :data:`ALL_SCHEDULERS`; any
            name of the scheduler registry, the PLRS variants included).
        plrs: the ``PLRSSpace`` for the ``plrs`` choice (default ``PLRSSpace()``); its prefix is
            set to ``"plrs_"`` when more than one scheduler is searched.
        lr: ``(low, high)`` log-uniform range of the baselines' peak LR, default ``(1e-3, 1.0)``.
    """

    def __init__(
        self,
        schedulers: Sequence[str] = ALL_SCHEDULERS,
        *,
        plrs: PLRSSpace | None = None,
        lr: tuple[float, float] | float = (1e-3, 1.0),
    ) -> None:
        self.schedulers, self.lr = self.check_choices(schedulers, lr)
        base = plrs if plrs is not None else PLRSSpace()
        if not isinstance(base, PLRSSpace):
            raise ArgumentTypeError("plrs", f"must be a PLRSSpace but got {base!r}.")
        _check_plrs_choices(base, self.schedulers)
        prefix = "plrs_" if len(self.schedulers) > 1 else ""
        self.plrs = base.with_prefix(prefix)

    @staticmethod
    def check_choices(
        schedulers: Sequence[str], lr: tuple[float, float] | float
    ) -> tuple[tuple[str, ...], tuple[float, float]]:
        """The checked scheduler names and the baselines' ``lr`` range."""
        if isinstance(schedulers, str) or not isinstance(schedulers, Sequence):
            raise ArgumentTypeError(
                "schedulers", f"must be a list of names but got {schedulers!r}."
            )
        return names("schedulers", schedulers, SCHEDULER_NAMES), number_range("lr", lr, low=0.0)

    def lr_param(self, scheduler: str) -> str:
        """The parameter name of a baseline scheduler's LR (``"<name>_lr"``, or ``"lr"``)."""
        return f"{scheduler}_lr" if len(self.schedulers) > 1 else "lr"

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample a scheduler and its parameters: ``{"scheduler": name, **params}``."""
        if len(self.schedulers) > 1:
            name = str(trial.suggest_categorical("scheduler", list(self.schedulers)))
        else:
            name = self.schedulers[0]
        trial.set_user_attr("scheduler", name)
        if SCHEDULERS[name].searches_bounds:
            params: dict[str, Any] = self.plrs.suggest(trial)
        else:
            lr_name = self.lr_param(name)
            params = {"lr": trial.suggest_float(lr_name, *self.lr, log=True)}
            record_bounds(trial, params)
        return {"scheduler": name, **params}

    def ray_param_space(self) -> dict[str, Any]:
        """The same space as a flat Ray Tune ``param_space``."""
        from prl_tune._imports import import_ray_tune

        tune = import_ray_tune()
        space: dict[str, Any] = {}
        if len(self.schedulers) > 1:
            space["scheduler"] = tune.choice(list(self.schedulers))
        for name in self.schedulers:
            if SCHEDULERS[name].searches_bounds:
                space.update(self.plrs.ray_param_space())
            else:
                space[self.lr_param(name)] = _ray_float(tune, self.lr, log=True)
        return space

    def searches_bounds(self, config: Mapping[str, Any]) -> bool:
        """Whether a sampled config's scheduler is PLRS or a variant (searched by :attr:`plrs`)."""
        name = str(config["scheduler"]) if len(self.schedulers) > 1 else self.schedulers[0]
        return name in SCHEDULERS and SCHEDULERS[name].searches_bounds

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Map a sampled config to ``{"scheduler": name, **params}`` (inactive keys dropped)."""
        name = str(config["scheduler"]) if len(self.schedulers) > 1 else self.schedulers[0]
        if name not in self.schedulers:
            raise ValueError(f"scheduler must be one of {list(self.schedulers)} but got {name!r}.")
        if SCHEDULERS[name].searches_bounds:
            return {"scheduler": name, **self.plrs.decode(config)}
        return {"scheduler": name, "lr": float(config[self.lr_param(name)])}

    def __repr__(self) -> str:
        return f"SchedulerSpace({list(self.schedulers)}, plrs={self.plrs!r}, lr={self.lr})"


def _check_plrs_choices(plrs: PLRSSpace, schedulers: tuple[str, ...]) -> None:
    """Refuse a ``plrs`` space whose choices a searched variant fixes, a beta shape that no
    searched scheduler draws with, and a log-uniform variant with an ``lr_min`` always 0."""
    bounded = [SCHEDULERS[name] for name in schedulers if SCHEDULERS[name].searches_bounds]
    if plrs.choice_params and not bounded:
        key = sorted(plrs.choice_params)[0]
        raise ArgumentValueError(
            f"plrs_{key}",
            f"applies to PLRS, which none of the schedulers {list(schedulers)} is, but got "
            f"{_shown(getattr(plrs, key))!r}.",
        )
    for entry in bounded:
        clash = sorted(plrs.choice_params & set(entry.fixed))
        if clash:
            key = clash[0]
            raise ArgumentValueError(
                f"plrs_{key}",
                f"must be left to {entry.name!r}, which fixes {key}={entry.fixed[key]!r} "
                f"(search it with 'plrs' alone) but got {_shown(getattr(plrs, key))!r}.",
            )
    distributions = {
        str(entry.fixed["distribution"]) if "distribution" in entry.fixed else name
        for entry in bounded
        for name in plrs.distribution
    }
    if "beta_shape" in plrs.choice_params and "beta" not in distributions:
        raise ArgumentValueError(
            "plrs_beta_shape",
            f"shapes a 'beta' draw, which no searched scheduler makes (schedulers "
            f"{list(schedulers)}, distribution {list(plrs.distribution)}) but got "
            f"{plrs.beta_shape!r}.",
        )
    for entry in bounded:
        if entry.fixed.get("distribution") == "log-uniform":
            plrs.check_log_uniform("schedulers", f"{entry.name!r} (a log-uniform draw)")


def _shown(value: Any) -> Any:
    """A space's choice as the study file writes it: one value, or a list of them."""
    if isinstance(value, tuple):
        return value[0] if len(value) == 1 else list(value)
    return value
