from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from prl_tune.stability import StabilityRules
from prl_tune.training import EpochMetrics, TaskData, TrainResult, load_task, train

PLRS = {"lr_min": 0.05, "lr_max": 0.1}
HUGE = {"lr_min": 1e6, "lr_max": 2e6}
ONLY_NONFINITE = StabilityRules(explode_factor=None, collapse_window=None)


def _plrs_lrs(seed: int, lr_min: float, lr_max: float, count: int) -> list[float]:
    """The LRs a one-group PLRS applies at steps 1, 2, ..., count: one float64 uniform per step
    from a generator of its own, ``lr_min + (lr_max - lr_min) * u``."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(count, generator=generator, dtype=torch.float64).tolist()
    return [min(lr_min + (lr_max - lr_min) * u, lr_max) for u in draws]


def _train_digits(
    epochs: int = 2, *, model: str = "cnn", seed: int = 0, **options: Any
) -> TrainResult:
    options.setdefault("scheduler_params", PLRS)
    task = load_task("digits", seed=seed, model=model)
    return train(task, epochs=epochs, device="cpu", seed=seed, **options)


def test_plrs_learns_digits_with_the_cnn() -> None:
    result = _train_digits(5)
    assert result.status == "completed"
    assert result.diverged_at_step is None
    assert result.reason is None
    assert result.instability is None
    best = result.best("val_accuracy")
    assert best is not None
    assert best.val_accuracy >= 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_history_has_one_entry_per_epoch() -> None:
    result = _train_digits(3)
    steps_per_epoch = 23  # 1437 training samples, batches of 64
    assert [m.epoch for m in result.history] == [1, 2, 3]
    assert [m.step for m in result.history] == [23, 46, 69]
    assert result.steps == 3 * steps_per_epoch
    assert result.final is result.history[-1]
    for metrics in result.history:
        assert metrics.seconds > 0
        assert 0.0 <= metrics.val_accuracy <= 1.0
        assert math.isfinite(metrics.train_loss)
        assert math.isfinite(metrics.val_loss)


def test_learning_rates_stay_within_the_plrs_bounds() -> None:
    result = _train_digits(2)  # seed 0 seeds PLRS too; 23 steps per epoch
    applied = _plrs_lrs(0, 0.05, 0.1, 2 * 23)
    for metrics, lrs in zip(result.history, (applied[:23], applied[23:]), strict=True):
        assert (metrics.lr_min, metrics.lr_max) == (min(lrs), max(lrs))
        assert metrics.lr_mean == math.fsum(lrs) / 23
        assert 0.05 <= metrics.lr_min < metrics.lr_max <= 0.1  # drawn, not constant
    assert result.lr_tail == applied[-32:]
    assert len(result.loss_tail) == 32


def test_constant_scheduler_reports_its_learning_rate() -> None:
    result = _train_digits(1, scheduler="constant", scheduler_params={"lr": 0.07})
    metrics = result.history[0]
    assert metrics.lr_min == metrics.lr_mean == metrics.lr_max == pytest.approx(0.07)


def test_same_seed_gives_the_same_history() -> None:
    first = _train_digits(2, seed=3)
    second = _train_digits(2, seed=3)
    other = _train_digits(2, seed=4)

    def values(result: TrainResult) -> list[dict[str, float]]:
        return [{k: v for k, v in m.as_dict().items() if k != "seconds"} for m in result.history]

    assert values(first) == values(second)
    assert first.lr_tail == second.lr_tail
    assert first.loss_tail == second.loss_tail
    assert values(first) != values(other)


def test_training_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    _train_digits(1)
    assert torch.equal(torch.get_rng_state(), state)


def test_huge_learning_rate_diverges_at_once() -> None:
    task = load_task("digits", model="mlp")
    result = train(
        task,
        epochs=3,
        scheduler_params=HUGE,
        device="cpu",
        stability=dataclasses.replace(ONLY_NONFINITE, check_every=1),
    )
    assert result.status == "diverged"
    assert result.instability == "non-finite"
    assert result.diverged
    assert result.diverged_at_step is not None
    assert result.diverged_at_step <= 8
    assert result.steps == result.diverged_at_step  # checked every step: stopped right there
    assert result.history == []  # no epoch was finished or evaluated
    assert result.reason == (
        f"non-finite training loss ({result.loss_tail[-1]}) at step {result.diverged_at_step}"
    )
    assert not math.isfinite(result.loss_tail[-1])
    assert all(math.isfinite(v) for v in result.loss_tail[:-1])  # the first non-finite step
    assert len(result.lr_tail) == len(result.loss_tail) == result.steps
    assert result.lr_tail == _plrs_lrs(0, 1e6, 2e6, result.steps)  # the LRs those steps used


def test_huge_learning_rate_explodes_before_it_is_non_finite() -> None:
    task = load_task("digits", model="mlp")
    result = train(task, epochs=3, scheduler_params=HUGE, device="cpu", check_every=1)
    assert result.status == "diverged"
    assert result.instability == "exploded"
    # Step 1 cannot explode (its running loss is the first loss, at most the reference); with
    # the huge LR applied at step 1, step 2's loss lifts the running loss past 10 x.
    assert result.diverged_at_step == result.steps == 2
    assert all(math.isfinite(v) for v in result.loss_tail)
    first, second = result.loss_tail
    reference = max(math.log(10), first)
    running = first + 0.1 * (second - first)
    assert result.reason == (
        f"exploded: running loss {running:.4g} above 10 x the reference {reference:.4g} at step 2"
    )


def test_divergence_is_found_at_the_next_check() -> None:
    task = load_task("digits", model="mlp")
    result = train(
        task,
        epochs=3,
        scheduler_params=HUGE,
        device="cpu",
        stability=dataclasses.replace(ONLY_NONFINITE, check_every=16),
    )
    assert result.status == "diverged"
    assert result.diverged_at_step is not None
    # Checks after steps 1, 2, 4, 8, then every 16: found at the first one after the NaN.
    assert result.steps == next(c for c in (1, 2, 4, 8, 16) if c >= result.diverged_at_step)
    assert result.diverged_at_step <= result.steps
    assert not math.isfinite(result.loss_tail[result.diverged_at_step - 1])
    assert all(math.isfinite(v) for v in result.loss_tail[: result.diverged_at_step - 1])


class _PoisonedBatches:
    """Four batches per epoch; from ``poison_epoch`` on, batch 3 holds a NaN input."""

    def __init__(self, poison_epoch: int) -> None:
        self.poison_epoch = poison_epoch
        self.epoch = 0

    def __len__(self) -> int:
        return 4

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.epoch += 1
        for index in range(4):
            inputs = torch.ones(8, 2)
            if self.epoch >= self.poison_epoch and index == 2:
                inputs[0, 0] = math.nan
            yield inputs, torch.zeros(8, dtype=torch.long)


def test_divergence_in_a_later_epoch_keeps_the_finished_epochs() -> None:
    batch = (torch.ones(8, 2), torch.zeros(8, dtype=torch.long))
    task = TaskData(
        model=torch.nn.Linear(2, 2), train_loader=_PoisonedBatches(3), val_loader=[batch]
    )
    seen: list[EpochMetrics] = []
    result = train(
        task, epochs=5, scheduler_params=PLRS, device="cpu", check_every=2, on_epoch=seen.append
    )
    assert result.status == "diverged"
    assert result.diverged_at_step == 2 * 4 + 3
    assert result.steps == 2 * 4 + 4  # found by the check after steps 11 and 12
    assert result.reason == "non-finite training loss (nan) at step 11"
    assert result.instability == "non-finite"
    assert [m.epoch for m in result.history] == [1, 2]
    assert seen == result.history


class _InfiniteWhenEvaluated(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs if self.training else inputs * math.inf


def test_non_finite_validation_loss_is_a_divergence() -> None:
    batch = (torch.ones(8, 2), torch.zeros(8, dtype=torch.long))
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), _InfiniteWhenEvaluated())
    task = TaskData(model=model, train_loader=[batch] * 3, val_loader=[batch])
    seen: list[EpochMetrics] = []
    result = train(task, epochs=4, scheduler_params=PLRS, device="cpu", on_epoch=seen.append)
    assert result.status == "diverged"
    assert result.diverged_at_step == result.steps == 3
    assert result.reason is not None
    assert result.reason.startswith("non-finite validation loss")
    assert "after epoch 1 (step 3)" in result.reason
    assert result.instability == "non-finite"
    assert result.history == seen == []


class _Stop(Exception):
    pass


def test_on_epoch_sees_every_epoch() -> None:
    seen: list[EpochMetrics] = []
    result = _train_digits(2, on_epoch=seen.append)
    assert seen == result.history


def test_on_epoch_exceptions_propagate_unchanged() -> None:
    seen: list[int] = []

    def stop_after_two(metrics: EpochMetrics) -> None:
        seen.append(metrics.epoch)
        if metrics.epoch == 2:
            raise _Stop(f"pruned at epoch {metrics.epoch}")

    with pytest.raises(_Stop, match="pruned at epoch 2"):
        _train_digits(5, model="mlp", on_epoch=stop_after_two)
    assert seen == [1, 2]


def test_gradient_clipping_slows_learning() -> None:
    free = _train_digits(1, model="mlp")
    clipped = _train_digits(1, model="mlp", grad_clip=1e-4)
    assert clipped.status == "completed"
    assert clipped.history[0].train_loss > free.history[0].train_loss + 0.5


def test_gradient_clipping_prevents_divergence() -> None:
    huge = {"lr_min": 1e6, "lr_max": 2e6}
    clipped = _train_digits(1, model="mlp", scheduler_params=huge, grad_clip=1e-12)
    assert clipped.status == "completed"


def test_adamw_learns() -> None:
    result = _train_digits(
        3,
        model="mlp",
        optimizer="adamw",
        optimizer_params={"weight_decay": 0.01},
        scheduler_params={"lr_min": 1e-3, "lr_max": 3e-3},
    )
    assert result.status == "completed"
    assert result.history[-1].val_accuracy >= 0.9


def test_sgd_with_nesterov_momentum_learns() -> None:
    result = _train_digits(
        2,
        model="mlp",
        optimizer_params={"momentum": 0.9, "nesterov": True},
        scheduler_params={"lr_min": 0.01, "lr_max": 0.02},
    )
    assert result.history[-1].val_accuracy >= 0.9


def test_accuracy_is_nan_for_regression() -> None:
    inputs = torch.linspace(-1, 1, 32).unsqueeze(1)
    batches = [(inputs[:16], 2 * inputs[:16]), (inputs[16:], 2 * inputs[16:])]
    task = TaskData(
        model=torch.nn.Linear(1, 1),
        train_loader=batches,
        val_loader=batches,
        loss_fn=torch.nn.functional.mse_loss,
    )
    result = train(task, epochs=3, scheduler="constant", scheduler_params={"lr": 0.1}, device="cpu")
    assert all(math.isnan(m.val_accuracy) for m in result.history)
    assert result.history[-1].val_loss < result.history[0].val_loss


def test_best_picks_by_metric_and_direction() -> None:
    result = _train_digits(3, model="mlp")
    by_loss = result.best("val_loss", "minimize")
    assert by_loss is not None
    assert by_loss.val_loss == min(m.val_loss for m in result.history)
    assert TrainResult(history=[], status="completed", steps=0).best() is None
    with pytest.raises(ValueError, match="metric must be a field"):
        result.best("accuracy")
    with pytest.raises(ValueError, match="direction must be one of"):
        result.best("val_loss", "down")


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an int >= 1"),
        ({"epochs": 2.0}, ValueError, "epochs must be an int >= 1"),
        ({"grad_clip": 0.0}, ValueError, "grad_clip must be"),
        ({"grad_clip": float("inf")}, ValueError, "grad_clip must be"),
        ({"check_every": 0}, ValueError, "check_every must be an int >= 1"),
        ({"optimizer_params": {"lr": 0.1}}, ValueError, "must not contain 'lr'"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"optimizer_params": {"momentum": 1.5}}, ValueError, "momentum must be"),
        ({"device": "gpu"}, ValueError, "device must be"),
        ({"scheduler": "linear"}, ValueError, "name must be one of"),
        ({"scheduler_params": {"lr_min": 0.1}}, TypeError, "lr_max"),
        ({"scheduler_params": {"lr_min": 0.2, "lr_max": 0.1}}, ValueError, "lr_max"),
    ],
)
def test_bad_arguments_are_rejected(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"epochs": 1, "scheduler_params": PLRS, "device": "cpu"}
    arguments.update(options)
    with pytest.raises(error, match=match):
        train(load_task("digits", model="mlp"), **arguments)


def test_loader_without_len_is_a_type_error() -> None:
    batches = iter([(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))])
    task = TaskData(model=torch.nn.Linear(1, 2), train_loader=batches, val_loader=[])
    with pytest.raises(TypeError, match="must have len"):
        train(task, epochs=1, scheduler_params=PLRS, device="cpu")


def test_empty_loaders_are_rejected() -> None:
    batch = (torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
    task = TaskData(model=torch.nn.Linear(1, 2), train_loader=[], val_loader=[batch])
    with pytest.raises(ValueError, match=r"train_loader must have len\(\) >= 1"):
        train(task, epochs=1, scheduler_params=PLRS, device="cpu")
    task = TaskData(model=torch.nn.Linear(1, 2), train_loader=[batch], val_loader=[])
    with pytest.raises(ValueError, match="val_loader must yield at least one batch"):
        train(task, epochs=1, scheduler_params=PLRS, device="cpu")


# --- stability rules in the loop ----------------------------------------------------------


def test_a_collapsing_cnn_run_stops_as_collapsed() -> None:
    # Measured (tests/stability_tests/traces.json): this run spikes at step 2 and ends at
    # chance accuracy 0.103 after 184 steps; the default rules stop it at step 54. (At
    # lr_max=2 the CNN explodes instead: see the next test.)
    checks: list[int] = []
    result = _train_digits(
        8,
        seed=2,
        scheduler_params={"lr_min": 0.7, "lr_max": 1.0},
        on_check=lambda step, loss: checks.append(step),
    )
    assert result.status == "diverged"
    assert result.instability == "collapsed"
    assert result.diverged_at_step is not None
    assert result.diverged_at_step <= 64 < 8 * 23
    assert result.diverged_at_step <= result.steps < result.diverged_at_step + 8
    assert result.reason is not None
    assert result.reason.startswith("collapsed: loss back at chance level 2.303 for 32 steps")
    assert len(result.history) == (result.steps - 1) // 23  # the stopping epoch is not kept
    assert all(step < result.steps for step in checks)  # not called at the stopping check


def test_a_diverging_cnn_run_explodes_within_the_first_steps() -> None:
    result = _train_digits(8, seed=1, scheduler_params={"lr_min": 1.4, "lr_max": 2.0})
    assert result.instability == "exploded"
    assert result.diverged_at_step is not None
    # The early checks (after steps 1, 2, 4, 8) stop it at the check that saw the explosion.
    assert result.steps == result.diverged_at_step <= 4


def test_a_run_that_recovers_from_a_spike_completes() -> None:
    # Scripted (exact on every machine): a spike to ~8 at steps 2-4, then the model predicts
    # the target class (loss ~0.07): the spike must not be judged a collapse or an explosion.
    model = _ScriptedLogits(4, spike_steps={2, 3, 4}, learned_after=4)
    batch = (torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
    task = TaskData(model=model, train_loader=[batch] * 16, val_loader=[batch], num_classes=4)
    result = train(task, epochs=8, scheduler_params=PLRS, device="cpu")
    assert result.status == "completed"
    assert result.history[-1].val_accuracy == 1.0


class _ScriptedLogits(torch.nn.Module):
    """Chance-level logits (all zero), except on the training steps in ``spike_steps``, where
    the wrong class gets logit 8 (a loss of ~8 against targets 0), and after the training step
    ``learned_after`` (if given), from which on the target class 0 gets logit 5 everywhere."""

    def __init__(
        self,
        classes: int,
        spike_steps: set[int],
        learned_after: int | None = None,
        spike_logit: float = 8.0,
    ) -> None:
        super().__init__()
        self.spike_logit = spike_logit
        self.weight = torch.nn.Parameter(torch.zeros(()))  # something to optimize
        self.classes = classes
        self.spike_steps = spike_steps
        self.learned_after = learned_after
        self.calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(inputs.shape[0], self.classes)
        if self.training:
            self.calls += 1
            if self.calls in self.spike_steps:
                logits[:, 1] = self.spike_logit
        if self.learned_after is not None and self.calls > self.learned_after:
            logits[:, 0] = 5.0
        return logits + 0.0 * self.weight


def _scripted_task(
    num_classes: int | None = 4,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> TaskData:
    batch = (torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
    return TaskData(
        model=_ScriptedLogits(4, spike_steps={2, 3, 4}),
        train_loader=[batch] * 16,
        val_loader=[batch],
        loss_fn=loss_fn or torch.nn.functional.cross_entropy,
        num_classes=num_classes,
    )


def test_a_spike_then_chance_level_is_a_collapse_at_ln_num_classes() -> None:
    seen: list[tuple[int, float]] = []
    result = train(
        _scripted_task(),
        epochs=8,
        scheduler_params=PLRS,
        device="cpu",
        on_check=lambda step, loss: seen.append((step, loss)),
    )
    # Running loss: ln 4 at step 1, 3.18 > 2 ln 4 after the spike (step 4), below 2 ln 4 from
    # step 7; the faster running loss is within 10 % of ln 4 from step 14; 32 steps there:
    # collapsed at step 45, found by the check at 48 (checks after 1, 2, 4, then every 8).
    assert result.instability == "collapsed"
    assert result.diverged_at_step == 45
    assert result.steps == 48
    # Per-step losses: ln 4 at chance, ln(e^8 + 3) at the spike steps 2-4.
    losses = [math.log(4)] + [math.log(math.exp(8) + 3)] * 3 + [math.log(4)] * 44
    running = [losses[0]]
    for loss in losses[1:]:
        running.append(running[-1] + 0.1 * (loss - running[-1]))
    assert result.reason == (
        f"collapsed: loss back at chance level 1.386 for 32 steps after a spike to "
        f"{running[3]:.4g} at step 4"
    )
    assert f"{running[3]:.4g}" == "3.179"
    assert [m.epoch for m in result.history] == [1, 2]
    assert [step for step, _ in seen] == [1, 2, 4, 8, 16, 24, 32, 40]
    # on_check gets the slow running loss (float32 step losses: rel 1e-6).
    assert [v for _, v in seen] == pytest.approx([running[s - 1] for s, _ in seen], rel=1e-6)


@pytest.mark.parametrize(
    "task",
    [
        _scripted_task(num_classes=None),
        _scripted_task(loss_fn=lambda out, y: torch.nn.functional.cross_entropy(out, y)),
    ],
    ids=["no-num-classes", "other-loss-fn"],
)
def test_without_a_known_chance_level_there_is_no_collapse(task: TaskData) -> None:
    result = train(task, epochs=8, scheduler_params=PLRS, device="cpu")
    assert result.status == "completed"


def test_on_check_is_called_after_steps_1_2_4_then_every_check_every_steps() -> None:
    batch = (torch.ones(8, 2), torch.zeros(8, dtype=torch.long))
    task = TaskData(model=torch.nn.Linear(2, 2), train_loader=[batch] * 16, val_loader=[batch])
    seen: list[tuple[int, float]] = []
    train(
        task,
        epochs=2,
        scheduler_params=PLRS,
        device="cpu",
        stability=StabilityRules(check_every=4),
        on_check=lambda step, loss: seen.append((step, loss)),
    )
    assert [step for step, _ in seen] == [1, 2, *range(4, 33, 4)]
    losses = [loss for _, loss in seen]
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]  # it learns


def test_on_check_also_runs_at_the_end_of_each_epoch() -> None:
    seen: list[int] = []
    _train_digits(2, model="mlp", on_check=lambda step, loss: seen.append(step))
    # 23 steps per epoch: checks after steps 1, 2, 4, 8, then every 8 and at each epoch end.
    assert seen == [1, 2, 4, 8, 16, 23, 31, 39, 46]


def test_on_check_exceptions_propagate_unchanged() -> None:
    def stop(step: int, loss: float) -> None:
        raise _Stop(f"pruned at step {step}")

    with pytest.raises(_Stop, match=r"pruned at step 1$"):
        _train_digits(1, model="mlp", on_check=stop)


def test_check_every_and_stability_must_agree() -> None:
    rules = StabilityRules(check_every=4)
    with pytest.raises(ValueError, match=r"check_every must equal stability.check_every \(4\)"):
        _train_digits(1, model="mlp", stability=rules, check_every=8)
    seen: list[int] = []
    _train_digits(
        1, model="mlp", stability=rules, check_every=4, on_check=lambda s, v: seen.append(s)
    )
    # 23 steps: checks after steps 1, 2, 4, then every 4, and at the end of the epoch.
    assert seen == [1, 2, 4, 8, 12, 16, 20, 23]


def test_stability_must_be_rules() -> None:
    with pytest.raises(TypeError, match="stability must be a StabilityRules or None"):
        _train_digits(1, model="mlp", stability={"check_every": 4})


def test_a_run_flat_at_chance_is_dead_only_with_the_evidence_that_a_gentler_range_learns() -> None:
    flat = TaskData(  # constant logits: every step's loss is exactly ln 4
        model=_ScriptedLogits(4, spike_steps=set()),
        train_loader=[(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))] * 16,
        val_loader=[(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))],
        num_classes=4,
    )
    slow = train(flat, epochs=6, scheduler_params=PLRS, device="cpu")
    assert slow.status == "completed"  # nothing says it is not merely slow
    assert slow.learned_at is None
    dead = train(flat, epochs=6, scheduler_params=PLRS, device="cpu", known_to_learn=True)
    rules = StabilityRules()
    assert (dead.instability, dead.diverged_at_step) == ("dead", rules.dead_window)
    assert dead.reason == (
        f"dead: loss never below the chance level 1.386 in {rules.dead_window} steps; a gentler "
        "range learned"
    )


def test_on_learned_reports_the_step_the_loss_first_fell_below_its_level() -> None:
    seen: list[int] = []
    result = _train_digits(2, on_learned=seen.append)
    assert result.learned_at is not None
    assert seen == [result.learned_at]
    assert 1 < result.learned_at < 46


def test_momentum_gives_a_spike_the_stateful_window() -> None:
    """A spike of 12 steps at a loss of ~40 (29 x ln 4) that the run comes back from: plain SGD
    calls it an explosion at once, SGD with momentum waits for the median of
    ``explode_window_stateful`` losses, which the spike never dominates."""

    def task() -> TaskData:
        batch = (torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
        model = _ScriptedLogits(4, spike_steps=set(range(2, 14)), learned_after=20, spike_logit=40)
        return TaskData(model, [batch] * 16, [batch], num_classes=4)

    plain = train(task(), epochs=4, scheduler_params=PLRS, device="cpu")
    assert plain.instability == "exploded"
    assert plain.diverged_at_step is not None and plain.diverged_at_step <= 6
    momentum = train(
        task(),
        epochs=4,
        scheduler_params=PLRS,
        device="cpu",
        optimizer_params={"momentum": 0.9},
    )
    assert momentum.status == "completed"
    adamw = train(task(), epochs=4, scheduler_params=PLRS, device="cpu", optimizer="adamw")
    assert adamw.status == "completed"
