"""One trial of a study: sample the space, train with the shared loop, report to the host."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prl_tune.config import StudySpec

if TYPE_CHECKING:
    import optuna

    from prl_tune.training import EpochMetrics, TrainResult


def train_config(
    spec: StudySpec,
    config: dict[str, Any],
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_check: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train the spec's task once with a decoded config ``{"scheduler": name, **params}``.

    Backend-neutral: the Optuna objective and the Ray Tune trainable both call this.
    """
    from prl_tune.training import load_task, select_device, train

    params = dict(config)
    scheduler = str(params.pop("scheduler"))
    seed = int(spec.study["seed"])
    if scheduler == "plrs":
        params.setdefault("seed", seed)
        params.setdefault("warmup_steps", int(spec.space["warmup_steps"]))
    device = select_device(spec.task["device"])
    task = load_task(spec.task["name"], seed=seed, device=device, **spec.task["params"])
    name, optimizer_params, grad_clip = optimizer_args(spec)
    return train(
        task,
        epochs=int(spec.task["epochs"]),
        scheduler=scheduler,
        scheduler_params=params,
        optimizer=name,
        optimizer_params=optimizer_params,
        grad_clip=grad_clip,
        device=device,
        seed=seed,
        stability=spec.stability_rules(),
        on_epoch=on_epoch,
        on_check=on_check,
    )


def optimizer_args(spec: StudySpec) -> tuple[str, dict[str, Any], float | None]:
    """``(name, params, grad_clip)`` of the ``[optimizer]`` section for ``build_optimizer``."""
    params = dict(spec.optimizer)
    name = str(params.pop("name"))
    grad_clip = params.pop("grad_clip")
    params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}
    if params.get("betas") is None:
        params.pop("betas", None)
    if name == "adamw":
        params.pop("momentum", None)
        params.pop("nesterov", None)
    return name, params, grad_clip


def objective_value(spec: StudySpec, result: TrainResult) -> float:
    """The trial's value: the metric of the last epoch, or of the best epoch (``[study] value``)."""
    values = [getattr(m, spec.metric) for m in result.history]
    if not values:
        return math.nan
    if spec.study["value"] == "last":
        return float(values[-1])
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return float(max(finite) if spec.direction == "maximize" else min(finite))


def optuna_objective(
    spec: StudySpec, trial: optuna.Trial, *, lr_max: tuple[float, float] | None = None
) -> float:
    """Run one Optuna trial: suggest, train, ``trial.report`` every epoch, prune on request.

    A range that the study's memory already knows to be unstable is pruned before training.
    A run stopped by the divergence rules (non-finite, exploded or collapsed training loss) is
    pruned at once and marked unstable (``prune_reason``, ``instability``,
    ``diverged_at_step``, an infeasible constraint) so the sampler avoids the region.

    Args:
        spec: the study.
        trial: the Optuna trial.
        lr_max: the ``lr_max`` range when the study file says ``"range-test"``.
    """
    import optuna

    from prl_tune.pruners import InstabilityPruner, mark_unstable

    config = spec.search_space(lr_max).suggest(trial)
    trial.set_user_attr("seed", int(spec.study["seed"]))
    pruner = trial.study.pruner
    if isinstance(pruner, InstabilityPruner) and pruner.prune_by_memory(trial.study, trial):
        trial.set_user_attr("steps", 0)
        raise optuna.TrialPruned(trial.user_attrs["prune_reason"])

    def on_epoch(metrics: EpochMetrics) -> None:
        trial.report(float(getattr(metrics, spec.metric)), metrics.epoch)
        trial.set_user_attr("history", _history_with(trial, metrics))
        if trial.should_prune():
            trial.set_user_attr("steps", metrics.step)
            if "prune_reason" not in trial.user_attrs:
                trial.set_user_attr("pruned_by", "base")
                trial.set_user_attr("prune_reason", f"base pruner at epoch {metrics.epoch}")
            raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch}")

    # The running training loss at the first check (the first step's loss) and the highest.
    losses: list[float] = []

    def on_check(step: int, running_loss: float) -> None:
        if not losses:
            losses[:] = [running_loss, running_loss]
        elif running_loss > losses[1] or not math.isfinite(running_loss):
            losses[1] = running_loss

    try:
        result = train_config(spec, config, on_epoch=on_epoch, on_check=on_check)
    finally:  # also when a pruner stops the trial from on_epoch
        if losses:
            trial.set_user_attr("initial_loss", _json_float(losses[0]))
            trial.set_user_attr("peak_loss", _json_float(losses[1]))
    trial.set_user_attr("steps", result.steps)
    if result.status == "diverged":
        mark_unstable(
            trial.study,
            trial,
            reason=result.reason or "diverged",
            pruned_by="rules",
            kind=result.instability or "non-finite",
            step=result.diverged_at_step,
        )
        trial.set_user_attr("loss_tail", [_json_float(v) for v in result.loss_tail])
        trial.set_user_attr("lr_tail", [float(v) for v in result.lr_tail])
        raise optuna.TrialPruned(result.reason or "diverged")
    return objective_value(spec, result)


def _history_with(trial: optuna.Trial, metrics: EpochMetrics) -> list[dict[str, float]]:
    history = list(trial.user_attrs.get("history", []))
    history.append({k: _json_float(v) for k, v in metrics.as_dict().items()})
    return history


def _json_float(value: float) -> float | str:
    """JSON has no NaN/inf; Optuna's RDB storage stores user attributes as JSON text."""
    return float(value) if math.isfinite(value) else repr(float(value))
