"""``InstabilityScheduler``: the stability rules and the unstable-range memory for Ray Tune."""

from __future__ import annotations

import numbers
import pickle
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, choice, flag, real
from prl_tune.space import PLRSSpace, SchedulerSpace
from prl_tune.stability import (
    MEMORY_MODES,
    RangeRecord,
    StabilityMonitor,
    StabilityRules,
    StopRecord,
    UnstableRangeMemory,
    describe_boundary,
    lr_bounds,
    range_context,
)

#: A result with this key set to a true value says the trainable itself found the run unstable
#: (prl_tune's training loop applies the rules to every step); its range is remembered.
UNSTABLE_KEY = "unstable"
_STATE_VERSION = 1


class InstabilityScheduler(TrialScheduler):
    """Stops Ray Tune trials whose LR range is unstable; otherwise defers to a base scheduler.

    The same rules and memory as :class:`~prl_tune.hosts.optuna.InstabilityPruner`, as a Ray Tune
    ``TrialScheduler`` that wraps any other (``ASHAScheduler``, ``HyperBandScheduler``, ...):

    1. **Memory** — before a pending trial starts, its ``lr_min``/``lr_max`` are compared with
       the ranges that proved unstable in this experiment (other searched values equal). A
       range at least as aggressive is stopped without running a step (``pruned_by =
       "memory"``). The memory lives in the scheduler, on the driver, so every trial of the
       experiment shares it, whichever node runs it.
    2. **Rules on the reports** — each result's ``loss`` value (a float, or a sequence of
       per-step losses since the last report) is fed to a
       :class:`~prl_tune.stability.StabilityMonitor` per trial; a verdict stops the trial at
       once. Steps are numbered consecutively across the results of a trial, from 1: a float
       is one step, a sequence one step per entry (an entry that is not a number keeps its
       step but is not judged), a result without the key none. The stop's ``step`` and the
       rules' windows are in these steps. A result with ``unstable`` true (prl_tune's loop
       judged every step itself) also stops it and teaches the memory.
    3. **Base** — otherwise the wrapped scheduler decides (default ``FIFOScheduler``).

    Results are not buffered (``supports_buffered_results`` is ``False``): a trial that
    diverges is stopped at the report that shows it, not several iterations later.

    Example:
        >>> from ray import tune
        >>> from ray.tune.schedulers import ASHAScheduler
        >>> from prl_tune import PLRSSpace
        >>> from prl_tune.hosts.ray import InstabilityScheduler
        >>> space = PLRSSpace(lr_max=(1e-3, 10.0))
        >>> scheduler = InstabilityScheduler(ASHAScheduler(), space=space, chance_loss=2.3026)
        >>> config = tune.TuneConfig(scheduler=scheduler, metric="val_accuracy", mode="max")

    Args:
        base: the Ray scheduler to defer to; ``None`` means ``FIFOScheduler()``.
        space: how a trial's config maps to its LR range: a
            :class:`~prl_tune.PLRSSpace` or :class:`~prl_tune.SchedulerSpace` (its
            ``ray_param_space()`` made the config). ``None``: the config holds ``lr_min`` and
            ``lr_max`` (or a single ``lr``) itself. A trial whose range cannot be read is
            never blocked and teaches the memory nothing.
        rules: the divergence rules (default ``StabilityRules()``); ``check_every`` does not
            matter here, every report is judged.
        memory: ``"dominance"`` (default), ``"lr_max"`` or ``"off"``; see
            :class:`~prl_tune.stability.UnstableRangeMemory`.
        loss: the result key with the training loss to judge (default ``"loss"``); results
            without it are not judged.
        chance_loss: the chance-level loss (``ln C`` for ``C`` balanced classes) the collapse
            rule needs; ``None`` (default) turns that rule off.
        stateful_optimizer: whether the trials' optimizer keeps momentum (SGD with momentum,
            AdamW): then an explosion must hold for ``rules.explode_window_stateful`` losses,
            which momentum methods need to come back from a spike (default False).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown memory mode, an empty ``loss`` key, or a ``chance_loss`` that is
            not a finite number ``> 0``.
    """

    def __init__(
        self,
        base: TrialScheduler | None = None,
        *,
        space: PLRSSpace | SchedulerSpace | None = None,
        rules: StabilityRules | None = None,
        memory: str = "dominance",
        loss: str = "loss",
        chance_loss: float | None = None,
        stateful_optimizer: bool = False,
    ) -> None:
        if base is not None and not isinstance(base, TrialScheduler):
            raise ArgumentTypeError(
                "base", f"must be a ray.tune TrialScheduler or None but got {base!r}."
            )
        if space is not None and not isinstance(space, (PLRSSpace, SchedulerSpace)):
            raise ArgumentTypeError(
                "space", f"must be a PLRSSpace, SchedulerSpace or None but got {space!r}."
            )
        if rules is not None and not isinstance(rules, StabilityRules):
            raise ArgumentTypeError("rules", f"must be a StabilityRules or None but got {rules!r}.")
        if not isinstance(loss, str) or not loss:
            raise ArgumentValueError("loss", f"must be a non-empty result key but got {loss!r}.")
        super().__init__()
        self.base: TrialScheduler = base if base is not None else FIFOScheduler()
        self.space = space
        self.rules = rules if rules is not None else StabilityRules()
        self.memory = UnstableRangeMemory(choice("memory", memory, MEMORY_MODES))
        self.loss = loss
        self.chance_loss = real("chance_loss", chance_loss, low=0.0, low_open=True, optional=True)
        self.stateful_optimizer = flag("stateful_optimizer", stateful_optimizer)
        self.stopped: dict[str, StopRecord] = {}
        #: The error text of each trial that raised, by Ray trial id.
        self.errors: dict[str, str] = {}
        self._monitors: dict[str, StabilityMonitor] = {}
        self._reports: dict[str, int] = {}

    # --- what Ray asks every scheduler -----------------------------------------------------

    @property
    def metric(self) -> str | None:
        return self.base.metric

    @property
    def supports_buffered_results(self) -> bool:
        return False

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return bool(self.base.set_search_properties(metric, mode, **spec))

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self.base.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.errors[trial.trial_id] = _error_text(trial)
        self._forget_monitor(trial)
        self.base.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if trial.trial_id in self.stopped:
            return TrialScheduler.STOP
        record = self._judge(trial, result)
        if record is not None:
            self.stopped[trial.trial_id] = record
            self._remember(trial, unstable=True)
            return TrialScheduler.STOP
        return str(self.base.on_trial_result(tune_controller, trial, result))

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        if trial.trial_id not in self.stopped:
            flagged = bool(result.get(UNSTABLE_KEY)) if result else False
            if flagged:
                self.stopped[trial.trial_id] = StopRecord(
                    "rules", str(result.get("prune_reason", "the trainable reported unstable"))
                )
            self._remember(trial, unstable=flagged)
        self._forget_monitor(trial)
        self.base.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._forget_monitor(trial)
        self.base.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        # Stopping a blocked trial removes it from the base's candidates, so this ends.
        while True:
            trial = self.base.choose_trial_to_run(tune_controller)
            if trial is None or trial.status != Trial.PENDING:
                return trial
            blocker = self.blocker(trial.config)
            if blocker is None:
                return trial
            record = StopRecord.by_memory(blocker)
            self.stopped[trial.trial_id] = record
            # A trial that never started has no folder and no result; the result grid needs
            # both. Its result says why it did not run (Ray logs that it found no result file).
            trial.init_local_path()
            trial.update_last_result(
                {
                    UNSTABLE_KEY: True,
                    "pruned_by": record.pruned_by,
                    "prune_reason": record.reason,
                    "config": dict(trial.config),
                    "trial_id": trial.trial_id,
                }
            )
            tune_controller.stop_trial(trial)

    def debug_string(self) -> str:
        by_rules = sum(r.pruned_by == "rules" for r in self.stopped.values())
        by_memory = len(self.stopped) - by_rules
        lines = [
            self.base.debug_string(),
            f"prl_tune: {by_rules} trials stopped as unstable, {by_memory} blocked by the memory.",
        ]
        for context, pair in sorted(self.boundary().items(), key=str):
            line = describe_boundary(context, *pair)
            if line is not None:
                lines.append(f"prl_tune: {line}")
        return "\n".join(lines)

    def save(self, checkpoint_path: str) -> None:
        """Save the memory and the monitors next to the base scheduler's checkpoint."""
        try:
            self.base.save(checkpoint_path)
        except NotImplementedError:
            pass
        state = {
            "version": _STATE_VERSION,
            "records": [asdict(r) for r in self.memory.records],
            "stopped": {k: asdict(v) for k, v in self.stopped.items()},
            "monitors": {k: m.state_dict() for k, m in self._monitors.items()},
            "reports": dict(self._reports),
        }
        Path(_own_path(checkpoint_path)).write_bytes(pickle.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        """Restore what :meth:`save` wrote (the base scheduler restores its own part)."""
        try:
            self.base.restore(checkpoint_path)
        except NotImplementedError:
            pass
        state = pickle.loads(Path(_own_path(checkpoint_path)).read_bytes())
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"state version must be {_STATE_VERSION} but got {state.get('version')!r}."
            )
        self.memory.records = [RangeRecord(**r) for r in state["records"]]
        self.stopped = {k: StopRecord(**v) for k, v in state["stopped"].items()}
        self._monitors = {}
        for trial_id, monitor_state in state["monitors"].items():
            monitor = StabilityMonitor(
                self.rules,
                chance_loss=self.chance_loss,
                stateful_optimizer=self.stateful_optimizer,
            )
            monitor.load_state_dict(monitor_state)
            self._monitors[trial_id] = monitor
        self._reports = dict(state["reports"])

    # --- ranges and the memory --------------------------------------------------------------

    def lr_range(self, config: Mapping[str, Any]) -> tuple[float, float, Hashable] | None:
        """``(lr_min, lr_max, context)`` of a trial's config, or ``None`` when it has none.

        The context is every other config value, so only ranges searched with otherwise equal
        settings are compared.
        """
        try:
            if self.space is not None:
                params = dict(self.space.decode(config))
                used = self._space_keys(config)
            else:
                params = {k: config[k] for k in ("lr_min", "lr_max", "lr") if k in config}
                used = set(params)
        except (KeyError, TypeError, ValueError):
            return None
        bounds = lr_bounds(params)
        if bounds is None:
            return None
        scheduler = str(params.get("scheduler", config.get("scheduler", "plrs")))
        return (*bounds, range_context(scheduler, config, lr_params=used))

    def blocker(self, config: Mapping[str, Any]) -> RangeRecord | None:
        """The unstable record that makes ``config``'s range too aggressive, or ``None``."""
        found = self.lr_range(config)
        if found is None:
            return None
        low, high, context = found
        return self.memory.blocker(low, high, context)

    def boundary(
        self, config: Mapping[str, Any] | None = None
    ) -> dict[Hashable, tuple[float | None, float | None]]:
        """Per context: ``(largest stable lr_max, smallest unstable lr_max)`` seen so far.

        The pair is a boundary only when the stable value is below the unstable one; a stable
        range above an unstable one is an overlap (``lr_min`` decided, not ``lr_max``), which
        :meth:`debug_string` and the study summary report as such. With ``config``, only the
        context of that config.
        """
        contexts = {r.context for r in self.memory.records}
        if config is not None:
            found = self.lr_range(config)
            contexts = set() if found is None else {found[2]}
        return {context: self.memory.boundary(context) for context in contexts}

    def _space_keys(self, config: Mapping[str, Any]) -> set[str]:
        space = self.space
        if isinstance(space, PLRSSpace):
            return set(space.param_names)
        assert isinstance(space, SchedulerSpace)
        # Ray samples the whole flat space, so every scheduler's LR key is in each config, and
        # PLRS's searched choices also in a baseline's (where they are inactive).
        lr_keys = {space.lr_param(name) for name in space.schedulers}
        if not space.searches_bounds(config):
            lr_keys |= set(space.plrs.choices)
        return (set(space.plrs.param_names) | lr_keys) & set(config)

    def _remember(self, trial: Trial, *, unstable: bool) -> None:
        """Called once per trial that ran: at its STOP, or at its completion otherwise."""
        stop = self.stopped.get(trial.trial_id)
        if stop is not None and stop.pruned_by == "memory":
            return  # it ran no step: it teaches nothing new
        found = self.lr_range(trial.config)
        if found is None:
            return
        low, high, context = found
        self.memory.add(RangeRecord(low, high, unstable, context, _trial_number(trial)))

    # --- the rules -------------------------------------------------------------------------

    def _judge(self, trial: Trial, result: Mapping[str, Any]) -> StopRecord | None:
        if result.get(UNSTABLE_KEY):
            reason = str(result.get("prune_reason", "the trainable reported unstable"))
            kind = result.get("instability")
            step = result.get("diverged_at_step")
            return StopRecord(
                "rules",
                reason,
                None if kind is None else str(kind),
                step if isinstance(step, int) and not isinstance(step, bool) else None,
            )
        values = _losses(result.get(self.loss))
        if not values:
            return None
        monitor = self._monitors.get(trial.trial_id)
        if monitor is None:
            monitor = StabilityMonitor(
                self.rules,
                chance_loss=self.chance_loss,
                stateful_optimizer=self.stateful_optimizer,
            )
            self._monitors[trial.trial_id] = monitor
        # self._reports: the steps a trial's results have covered so far.
        first = self._reports.get(trial.trial_id, 0) + 1
        self._reports[trial.trial_id] = first + len(values) - 1
        for offset, value in enumerate(values):
            if value is None:
                continue
            if monitor.observe([value], first_step=first + offset) is not None:
                break
        verdict = monitor.verdict
        return None if verdict is None else StopRecord.by_rules(verdict)

    def _forget_monitor(self, trial: Trial) -> None:
        self._monitors.pop(trial.trial_id, None)
        self._reports.pop(trial.trial_id, None)


def _losses(value: object) -> list[float | None]:
    """A reported loss, one entry per step: one number, or a sequence of per-step values.

    An entry of a sequence that is not a number is ``None``: it keeps its step, so the steps
    after it keep their numbers, but it is not judged.
    """
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, numbers.Real):
        return [float(value)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_number(v) for v in value]
    tolist: Callable[[], Any] | None = getattr(value, "tolist", None)  # numpy / torch
    if tolist is not None:
        return _losses(tolist())
    return []


def _number(value: object) -> float | None:
    """One step's loss as a float (a 0-d numpy or torch value too), or ``None``."""
    tolist: Callable[[], Any] | None = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, numbers.Real):
        value = tolist()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _error_text(trial: Trial) -> str:
    """The last line of the error a trial raised, ``Type: message`` (Ray writes its traceback
    to the trial's ``error.txt``)."""
    try:
        text_ = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text_ = ""
    lines = [line.strip() for line in text_.splitlines() if line.strip()]
    return lines[-1] if lines else "the trial raised (no error file)"


def _trial_number(trial: Trial) -> int | None:
    """The trial's position in the experiment, from its id's numeric suffix when it has one."""
    tail = str(trial.trial_id).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _own_path(checkpoint_path: str) -> str:
    return f"{checkpoint_path}.prl_tune"
