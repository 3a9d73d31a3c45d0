"""The Ray Tune trainable of a study: one trial of the shared loop, checkpointed every epoch."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from prl_tune.config import LossRange, StudySpec, objective_value, train_trial
from prl_tune.hosts.ray._scheduler import UNSTABLE_KEY
from prl_tune.space import SchedulerSpace
from prl_tune.stability import EVIDENCE_KEY
from prl_tune.store import json_float

if TYPE_CHECKING:
    from prl_tune.training import EpochMetrics, TrainResult

#: The result key with the trial's value so far (``[study] value``: the last or the best epoch).
VALUE_KEY = "objective"
_STATE_FILE = "state.pt"
#: In each checkpoint: ``{"epoch": ..., "history": [...]}``, readable without torch.
PROGRESS_FILE = "progress.json"


def params_key(params: Mapping[str, Any]) -> str:
    """A trial's sampled parameters as a canonical string (to find its checkpoint by)."""
    return json.dumps(dict(params), sort_keys=True)


def study_trainable(
    config: dict[str, Any],
    *,
    spec_data: dict[str, Any],
    source: str,
    resumes: Mapping[str, str] | None = None,
) -> None:
    """Train one trial of the study ``spec_data`` (``StudySpec.to_dict()``, ``lr_max`` resolved)
    with the sampled ``config`` (decoded by the study's space).

    Every epoch reports the epoch's metrics, ``steps``, ``objective`` (the trial's value so
    far), the loss range, and a checkpoint holding the whole run state (model, optimizer,
    scheduler and its generator, stability monitor, RNG and data order). A trial restarted by
    Ray (``max_failures``) continues from its last checkpoint and draws the same LRs as an
    uninterrupted run. A trial whose parameters are in ``resumes`` (a trial of a dead driver,
    re-proposed) starts from that checkpoint when Ray has none of its own. A run the divergence
    rules stop reports ``unstable`` with the reason.
    """
    import torch

    config = dict(config)
    known = bool(config.pop(EVIDENCE_KEY, False))  # the driver's evidence for the dead rule
    spec = StudySpec.from_dict(spec_data, source=source)
    if not isinstance(spec.space, SchedulerSpace):
        raise TypeError("spec_data must have a concrete lr_max (resolve the range test first).")
    torch.set_num_threads(max(1, math.floor(spec.ray.cpus_per_trial)))
    resume = _restored_state(tune.get_checkpoint())
    if resume is None and resumes and params_key(config) in resumes:
        resume = _restored_state(tune.Checkpoint(resumes[params_key(config)]))
    losses = LossRange()
    reporter = _EpochReporter(spec, losses)
    params = spec.space.decode(config)
    result = train_trial(
        spec, params, progress=losses, on_state=reporter, resume=resume, known_to_learn=known
    )
    if result.diverged:
        tune.report(_divergence(result, losses))


def _restored_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    """The run state in a checkpoint (a restarted or resumed trial), or ``None``."""
    import torch

    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state: dict[str, Any] = torch.load(
            Path(folder) / _STATE_FILE, map_location="cpu", weights_only=False
        )
    return state


class _EpochReporter:
    """``on_state``: report the epoch with a checkpoint of the run state."""

    def __init__(self, spec: StudySpec, losses: LossRange) -> None:
        self.spec = spec
        self.losses = losses

    def __call__(self, metrics: EpochMetrics, state: dict[str, Any]) -> None:
        import torch

        from prl_tune.training import EpochMetrics, TrainResult

        history = [EpochMetrics(**m) for m in state["history"]]
        so_far = TrainResult(history=history, status="completed", steps=metrics.step)
        report = {
            **metrics.as_dict(),
            "steps": metrics.step,
            VALUE_KEY: objective_value(self.spec, so_far),
            **self.losses.attrs(),
        }
        with tempfile.TemporaryDirectory(prefix="prl_tune-") as folder:
            torch.save(state, Path(folder) / _STATE_FILE)
            progress = {"epoch": metrics.epoch, "history": state["history"]}
            (Path(folder) / PROGRESS_FILE).write_text(json.dumps(progress))
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))


def _divergence(result: TrainResult, losses: LossRange) -> dict[str, Any]:
    """The last result of a run the rules stopped: why, when, and the tails of the run."""
    return {
        UNSTABLE_KEY: True,
        "pruned_by": "rules",
        "prune_reason": result.reason or "diverged",
        "instability": result.instability or "non-finite",
        "diverged_at_step": result.diverged_at_step,
        "steps": result.steps,
        "loss_tail": [json_float(v) for v in result.loss_tail],
        "lr_tail": [float(v) for v in result.lr_tail],
        **losses.attrs(),
    }
