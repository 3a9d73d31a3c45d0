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
    optimizer = dict(spec.optimizer)
    name = optimizer.pop("name")
    grad_clip = optimizer.pop("grad_clip")
    optimizer_params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in optimizer.items()}
    if optimizer_params.get("betas") is None:
        optimizer_params.pop("betas", None)
    if name == "adamw":
        optimizer_params.pop("momentum", None)
        optimizer_params.pop("nesterov", None)
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
        on_epoch=on_epoch,
    )


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


def optuna_objective(spec: StudySpec, trial: optuna.Trial) -> float:
    """Run one Optuna trial: suggest, train, ``trial.report`` every epoch, prune on request.

    A diverged run (non-finite training loss) is stopped at once and pruned, with
    ``prune_reason`` and ``diverged_at_step`` on the trial; for an accuracy metric it first
    reports accuracy 0 so the sampler sees the region as bad (a pruned trial with no value would
    teach TPE less).
    """
    import optuna

    config = spec.search_space().suggest(trial)
    trial.set_user_attr("seed", int(spec.study["seed"]))

    def on_epoch(metrics: EpochMetrics) -> None:
        trial.report(float(getattr(metrics, spec.metric)), metrics.epoch)
        trial.set_user_attr("history", _history_with(trial, metrics))
        if trial.should_prune():
            trial.set_user_attr("prune_reason", f"pruner at epoch {metrics.epoch}")
            raise optuna.TrialPruned(f"pruned at epoch {metrics.epoch}")

    result = train_config(spec, config, on_epoch=on_epoch)
    trial.set_user_attr("steps", result.steps)
    if result.status == "diverged":
        trial.set_user_attr("prune_reason", result.reason or "diverged")
        trial.set_user_attr("diverged_at_step", result.diverged_at_step)
        trial.set_user_attr("loss_tail", [_json_float(v) for v in result.loss_tail])
        trial.set_user_attr("lr_tail", [float(v) for v in result.lr_tail])
        if spec.metric == "val_accuracy":
            trial.report(0.0, len(result.history) + 1)
        raise optuna.TrialPruned(result.reason or "diverged")
    return objective_value(spec, result)


def _history_with(trial: optuna.Trial, metrics: EpochMetrics) -> list[dict[str, float]]:
    history = list(trial.user_attrs.get("history", []))
    history.append({k: _json_float(v) for k, v in metrics.as_dict().items()})
    return history


def _json_float(value: float) -> float | str:
    """JSON has no NaN/inf; Optuna's RDB storage stores user attributes as JSON text."""
    return float(value) if math.isfinite(value) else repr(float(value))
