"""Divergence rules on the per-step training loss (pure Python; every host feeds it floats)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prl_tune._checks import ArgumentTypeError, flag, integer, known_keys, real

VERDICT_KINDS: tuple[str, ...] = (
    "non-finite",
    "exploded",
    "sustained",
    "collapsed",
    "dead",
    "rising",
)
"""The values :attr:`Verdict.kind` can take, in the order the rules are checked each step."""

_STATE_VERSION = 3


@dataclass(frozen=True)
class StabilityRules:
    """When a training run counts as unstable, judged on its per-step training loss.

    Example:
        >>> rules = StabilityRules(collapse_window=64)
        >>> StabilityRules.from_mapping(rules.to_dict()) == rules
        True

    A :class:`StabilityMonitor` applies the rules to a smoothed *running loss* (an exponential
    moving average, weight ``smoothing`` on the newest step, started at the first step's loss)
    and compares it with a *reference*: the larger of the chance level (``ln C`` for
    cross-entropy over ``C`` classes) and the first step's loss, or the first step's loss alone
    when the chance level is unknown. A run's *level* is the smaller of the two (or the first
    loss); it has *learned* once its running loss is below ``1 - dead_tolerance`` of its level.
    Every step is checked, in this order:

    1. ``nonfinite``: a NaN or infinite step loss stops the run at that step.
    2. explosion: the running loss above ``explode_factor`` x reference, and the median of the
       last ``explode_window`` step losses too (``explode_window_stateful`` for an optimizer
       with momentum or AdamW, which come back from spikes that plain SGD does not survive).
    3. sustained: the running loss above ``sustain_factor`` x reference for ``sustain_window``
       steps.
    4. collapse (needs the chance level): a faster running loss (weight
       ``collapse_smoothing``) within ``collapse_tolerance`` (relative) of the chance level for
       ``collapse_window`` steps, after a *spike* (running loss above ``spike_factor`` x
       reference) or after the run had learned well (running loss below ``1 - 2
       collapse_tolerance`` of the chance level): it fell back to predicting the class prior.
       A slow start near chance level has done neither and never fires.
    5. dead (needs ``known_to_learn``): ``dead_window`` steps from the start, or from the end of
       the last spike, without learning, or, once it learned, ``dead_window`` steps back at or
       above its level (it learned a little and fell back), while a less aggressive range of
       the same setup is known to have learned within ``dead_window`` steps. The same flat loss
       without that evidence may be a slow start, and is left alone.
    6. rise (off by default): the running loss stays above ``rise_factor`` x its best value
       from before the window for ``rise_window`` consecutive steps.

    Windows count steps as the caller numbers them (the training loop: optimizer steps; a
    pruner: report steps), except the explosion windows, which count the losses seen. The
    defaults were chosen on recorded loss traces of six task families and four optimizers, and
    checked on each family held out (``benchmarks/stability_holdout.py``); the figures are in
    ``benchmarks/README.md``.

    Args:
        check_every: Steps between two checks in the training loop (default 8); the loop brings
            the step losses to the host only then, so a rule fires at most this many steps late.
            The loop's first checks come sooner, after steps 1, 2, 4, ... (doubling up to
            ``check_every``), so a run that explodes at once stops within a step or two.
        nonfinite: Stop on a non-finite step loss (default True). When False, non-finite steps
            are skipped (not folded into the running loss).
        explode_factor: Explosion threshold relative to the reference, ``> 1``; ``None``
            disables the rule (default 10.0).
        explode_window: Step losses whose median must also be above the threshold, for plain
            SGD and wherever the optimizer is unknown, ``>= 1`` (default 1: at once).
        explode_window_stateful: The same for SGD with momentum and AdamW, ``>= 1`` (default
            32).
        sustain_factor: Sustained-loss threshold relative to the reference, ``> 1``; ``None``
            disables the rule (default 3.0).
        sustain_window: Steps the running loss must stay above it, ``>= 1`` (default 64).
        dead_window: Steps without learning that mean a dead run, ``>= 1``; ``None`` disables
            the rule (default 48).
        dead_tolerance: How far below its level the running loss must get to count as
            learning, in ``[0, 1)`` (default 0.1).
        spike_factor: What counts as a spike before a collapse, relative to the reference,
            ``> 1`` (default 2.0).
        collapse_window: Steps back at chance level that mean a collapse, ``>= 1``; ``None``
            disables the rule (default 32).
        collapse_tolerance: Half width of the chance-level band relative to the chance level,
            in ``(0, 1)`` (default 0.1: the band ``[0.9, 1.1] x ln C``).
        collapse_smoothing: Weight of the newest step in the faster running loss that the
            chance band judges, in ``(0, 1]`` (default 0.3; 1 judges each step's raw loss,
            which on batch 16 leaves the band for single noisy batches of a collapsed model).
        rise_window: Steps the running loss must stay risen, ``>= 1``; ``None`` disables the
            rule (default). Off by default: near the end of a good run the loss is small and
            noisy, so a ratio to its best value can be large without any instability.
        rise_factor: How far above its best the running loss must stay, ``> 1`` (default 5.0).
        smoothing: Weight of the newest step in the running loss, in ``(0, 1]`` (default 0.1;
            1 means no smoothing).

    Raises:
        TypeError: A field of the wrong type (e.g. a float window).
        ValueError: A field out of range, NaN or infinite.
    """

    check_every: int = 8
    nonfinite: bool = True
    explode_factor: float | None = 10.0
    explode_window: int = 1
    explode_window_stateful: int = 32
    sustain_factor: float | None = 3.0
    sustain_window: int = 64
    dead_window: int | None = 48
    dead_tolerance: float = 0.1
    spike_factor: float = 2.0
    collapse_window: int | None = 32
    collapse_tolerance: float = 0.1
    collapse_smoothing: float = 0.3
    rise_window: int | None = None
    rise_factor: float = 5.0
    smoothing: float = 0.1

    def __post_init__(self) -> None:
        integer("check_every", self.check_every, minimum=1)
        flag("nonfinite", self.nonfinite)
        real("explode_factor", self.explode_factor, low=1, low_open=True, optional=True)
        integer("explode_window", self.explode_window, minimum=1)
        integer("explode_window_stateful", self.explode_window_stateful, minimum=1)
        real("sustain_factor", self.sustain_factor, low=1, low_open=True, optional=True)
        integer("sustain_window", self.sustain_window, minimum=1)
        integer("dead_window", self.dead_window, minimum=1, optional=True)
        real("dead_tolerance", self.dead_tolerance, low=0, high=1, high_open=True)
        real("spike_factor", self.spike_factor, low=1, low_open=True)
        integer("collapse_window", self.collapse_window, minimum=1, optional=True)
        real(
            "collapse_tolerance",
            self.collapse_tolerance,
            low=0,
            high=1,
            low_open=True,
            high_open=True,
        )
        real("collapse_smoothing", self.collapse_smoothing, low=0, high=1, low_open=True)
        integer("rise_window", self.rise_window, minimum=1, optional=True)
        real("rise_factor", self.rise_factor, low=1, low_open=True)
        real("smoothing", self.smoothing, low=0, high=1, low_open=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StabilityRules:
        """Build the rules from a mapping such as a study file's table; missing keys default.

        Raises:
            TypeError: ``data`` is not a mapping, or a value of the wrong type.
            ValueError: An unknown key, or a value out of range.
        """
        if not isinstance(data, Mapping):
            raise ArgumentTypeError(
                "stability rules", f"must be a mapping but got {type(data).__name__}."
            )
        known_keys(data, [f.name for f in dataclasses.fields(cls)])
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The rules as a plain ``{field: value}`` dict (JSON-able; ``None`` = rule off)."""
        return dataclasses.asdict(self)


OPTIONAL_RULES: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(StabilityRules)
    if f.type == "int | None" or f.type == "float | None"
)
"""The thresholds that ``None`` switches off (a study file writes ``false``)."""


@dataclass(frozen=True)
class Verdict:
    """Why and when a run was judged unstable.

    Args:
        kind: One of :data:`VERDICT_KINDS`: ``"non-finite"``, ``"exploded"``, ``"collapsed"``
            or ``"rising"``.
        step: The step at which the rule fired, as the caller numbered it (the training loop:
            the 1-based optimizer step; Optuna reports: the report step) (for ``"non-finite"``: the
            first non-finite step).
        reason: One sentence for people, e.g. ``"collapsed: loss at chance level 2.303 for 16
            steps after a spike to 9.214 at step 4"``.
    """

    kind: str
    step: int
    reason: str


class StabilityMonitor:
    """Applies :class:`StabilityRules` to a stream of per-step training losses.

    Example:
        >>> monitor = StabilityMonitor(StabilityRules(), chance_loss=math.log(10))
        >>> monitor.observe([2.4, 2.2, 2.0], first_step=1) is None
        True
        >>> monitor.observe([float("nan")], first_step=4)
        Verdict(kind='non-finite', step=4, reason='non-finite training loss (nan) at step 4')

    Losses are fed in order, in chunks of any size (the training loop feeds one chunk per
    check); steps may skip ahead (unseen steps are simply not judged) but never go back. Once a
    rule has fired the monitor keeps that verdict: later calls return it without looking at
    their losses. The ratio rules (explosion, sustained, spike, rise) need a reference ``> 0``;
    when the first step's loss is ``<= 0`` and no chance level is given they stay off.

    Args:
        rules: The thresholds.
        chance_loss: The loss of a model that predicts the class prior, ``ln C`` for
            cross-entropy over ``C`` balanced classes; ``None`` (default) when unknown, which
            turns the collapse rule off.
        known_to_learn: Whether a less aggressive LR range of the same setup is known to have
            learned within ``rules.dead_window`` steps (default False); the dead rule fires
            only then.
        stateful_optimizer: Whether the optimizer keeps momentum (SGD with momentum, AdamW):
            then ``rules.explode_window_stateful`` applies instead of ``explode_window``
            (default False).
    """

    def __init__(
        self,
        rules: StabilityRules,
        *,
        chance_loss: float | None = None,
        known_to_learn: bool = False,
        stateful_optimizer: bool = False,
    ) -> None:
        if not isinstance(rules, StabilityRules):
            raise ArgumentTypeError(
                "rules", f"must be a StabilityRules but got {type(rules).__name__} {rules!r}."
            )
        real("chance_loss", chance_loss, low=0, low_open=True, optional=True)
        self.rules = rules
        self.chance_loss = None if chance_loss is None else float(chance_loss)
        self.known_to_learn = flag("known_to_learn", known_to_learn)
        self.stateful_optimizer = flag("stateful_optimizer", stateful_optimizer)
        self._explode_window = (
            rules.explode_window_stateful if stateful_optimizer else rules.explode_window
        )
        self._last_step = -1  # steps start at 1 in the training loop, at 0 in Optuna's reports
        self._running: float | None = None
        self._fast: float | None = None  # the faster running loss the chance band judges
        self._reference: float | None = None
        self._best: float | None = None  # best running loss before the rise window
        self._spike_peak: float | None = None
        self._spike_step: int | None = None
        self._in_spike = False
        self._plateau_start: int | None = None
        self._last_loss = math.nan
        self._recent: deque[float] = deque()  # the last explode_window step losses
        self._high_since: int | None = None  # first step of the stretch above sustain_factor
        self._level: float | None = None  # what "no better than the start" means
        self._learned_at: int | None = None
        self._learned_below: int | None = None  # first step well below the chance band
        self._below_at: int | None = None  # once learned: the last step below its level
        self._calm_since = 0  # the step the last spike ended (0: no spike yet)
        self._window: deque[tuple[int, float]] = deque()  # (step, running loss), rise window
        self._window_min: deque[tuple[int, float]] = deque()  # increasing running losses
        self._verdict: Verdict | None = None

    @property
    def running_loss(self) -> float | None:
        """The smoothed training loss after the last finite step, ``None`` before any."""
        return self._running

    @property
    def verdict(self) -> Verdict | None:
        """The verdict once a rule has fired, else ``None``."""
        return self._verdict

    def observe(self, losses: Sequence[float], first_step: int) -> Verdict | None:
        """Judge the losses of steps ``first_step, first_step + 1, ...``.

        Returns:
            The first verdict (also on later calls), or ``None`` while the run looks stable.

        Raises:
            ValueError: ``first_step`` is not after the last step observed, or below 0.
        """
        if self._verdict is not None:
            return self._verdict
        integer("first_step", first_step, minimum=0)
        if first_step <= self._last_step:
            raise ValueError(
                f"first_step must be > the last step observed ({self._last_step}) but got "
                f"{first_step}."
            )
        for offset, loss in enumerate(losses):
            verdict = self._step(int(first_step) + offset, float(loss))
            if verdict is not None:
                self._verdict = verdict
                return verdict
        return None

    def _step(self, step: int, loss: float) -> Verdict | None:
        rules = self.rules
        self._last_step = step
        if not math.isfinite(loss):
            if rules.nonfinite:
                return Verdict(
                    "non-finite", step, f"non-finite training loss ({loss}) at step {step}"
                )
            return None
        self._last_loss = loss
        if self._running is None:
            self._running = self._fast = loss
            chance = self.chance_loss
            self._reference = loss if chance is None else max(chance, loss)
            self._level = loss if chance is None else min(chance, loss)
        else:
            self._running += rules.smoothing * (loss - self._running)
            fast = loss if self._fast is None else self._fast
            self._fast = fast + rules.collapse_smoothing * (loss - fast)
        running = self._running
        reference = self._reference
        level = self._level
        if self._learned_at is None and level is not None:
            if running < (1.0 - rules.dead_tolerance) * level:
                self._learned_at = step
        if self._learned_at is not None and level is not None and running < level:
            self._below_at = step
        if reference is None or reference <= 0.0:
            return None
        verdict = self._check_high(step, running, reference)
        if verdict is None:
            verdict = self._check_collapse(step, running, reference)
        if verdict is None:
            verdict = self._check_dead(step)
        if verdict is None and rules.rise_window is not None:
            verdict = self._check_rise(step, running, rules.rise_window)
        return verdict

    def _check_high(self, step: int, running: float, reference: float) -> Verdict | None:
        """Explosion and sustained high loss: the running loss above a multiple of the
        reference for enough consecutive steps."""
        rules = self.rules
        factor = rules.explode_factor
        recent = self._recent
        recent.append(self._last_loss)
        while len(recent) > self._explode_window:
            recent.popleft()
        if factor is not None and running > factor * reference:
            typical = statistics.median(recent)
            if len(recent) >= self._explode_window and typical > factor * reference:
                also = (
                    ""
                    if len(recent) == 1
                    else f" and the median of the last {len(recent)} step losses {typical:.4g}"
                )
                return Verdict(
                    "exploded",
                    step,
                    f"exploded: running loss {running:.4g}{also} above {factor:g} x the "
                    f"reference {reference:.4g} at step {step}",
                )
        factor = rules.sustain_factor
        high = factor is not None and running > factor * reference
        if not high:
            self._high_since = None
        elif self._high_since is None:
            self._high_since = step
        since = self._high_since
        if factor is not None and since is not None and step - since + 1 >= rules.sustain_window:
            return Verdict(
                "sustained",
                step,
                f"sustained: running loss above {factor:g} x the reference {reference:.4g} for "
                f"{step - since + 1} steps (steps {since}-{step})",
            )
        return None

    def _check_dead(self, step: int) -> Verdict | None:
        """Dead: ``dead_window`` steps from the start, or from the end of the last spike,
        without ever learning, or back at or above its level for as long after learning,
        while a less aggressive range is known to have learned."""
        rules = self.rules
        level = self._level
        if rules.dead_window is None or not self.known_to_learn or level is None:
            return None
        if self._in_spike:
            return None
        what = "the first loss" if level != self.chance_loss else "the chance level"
        calm_since = self._calm_since
        if self._learned_at is not None:
            back = max(calm_since, self._below_at if self._below_at is not None else 0)
            if step - back < rules.dead_window:
                return None
            return Verdict(
                "dead",
                step,
                f"dead: loss back at or above {what} {level:.4g} for {step - back} steps (since "
                f"step {back}) after it learned at step {self._learned_at}; a gentler range "
                "learned",
            )
        calm = step - calm_since
        if calm < rules.dead_window:
            return None
        since = "" if calm_since == 0 else f" after its spike (to step {calm_since})"
        return Verdict(
            "dead",
            step,
            f"dead: loss never below {what} {level:.4g} in {calm} steps{since}; a gentler "
            "range learned",
        )

    @property
    def learned_at(self) -> int | None:
        """The first step whose running loss was below the smaller of the chance level and the
        first step's loss by more than ``dead_tolerance``; ``None`` before."""
        return self._learned_at

    def _check_collapse(self, step: int, running: float, reference: float) -> Verdict | None:
        rules = self.rules
        if running > rules.spike_factor * reference:
            if not self._in_spike or self._spike_peak is None or running > self._spike_peak:
                self._spike_peak, self._spike_step = running, step
            self._in_spike = True
        elif self._in_spike:
            self._in_spike = False
            self._calm_since = step
        chance = self.chance_loss
        if chance is None or rules.collapse_window is None:
            return None
        if self._learned_below is None and running < (1 - 2 * rules.collapse_tolerance) * chance:
            self._learned_below = step
        if self._spike_step is None and self._learned_below is None:
            return None
        fast = running if self._fast is None else self._fast
        if abs(fast - chance) > rules.collapse_tolerance * chance or self._in_spike:
            self._plateau_start = None
            return None
        if self._plateau_start is None:
            self._plateau_start = step
        steps = step - self._plateau_start + 1
        if steps < rules.collapse_window:
            return None
        if self._spike_step is not None and self._spike_peak is not None:
            before = f"a spike to {self._spike_peak:.4g} at step {self._spike_step}"
        else:
            before = f"learning (well below it at step {self._learned_below})"
        return Verdict(
            "collapsed",
            step,
            f"collapsed: loss back at chance level {chance:.4g} for {steps} steps after {before}",
        )

    def _check_rise(self, step: int, running: float, window: int) -> Verdict | None:
        """Sliding window of the last ``window`` steps; its minimum against the best before."""
        self._window.append((step, running))
        while self._window_min and self._window_min[-1][1] >= running:
            self._window_min.pop()
        self._window_min.append((step, running))
        while self._window[0][0] <= step - window:
            _, left = self._window.popleft()
            self._best = left if self._best is None else min(self._best, left)
        while self._window_min[0][0] <= step - window:
            self._window_min.popleft()
        best = self._best
        if best is None or best <= 0.0:
            return None
        lowest = self._window_min[0][1]
        if lowest <= self.rules.rise_factor * best:
            return None
        return Verdict(
            "rising",
            step,
            f"rising: running loss above {self.rules.rise_factor:g} x its best {best:.4g} for "
            f"{window} steps (steps {step - window + 1}-{step})",
        )

    def state_dict(self) -> dict[str, Any]:
        """The monitor's state as plain JSON-able data (the rules are not included)."""
        verdict = self._verdict
        return {
            "version": _STATE_VERSION,
            "chance_loss": self.chance_loss,
            "last_step": self._last_step,
            "running": self._running,
            "fast": self._fast,
            "reference": self._reference,
            "best": self._best,
            "spike_peak": self._spike_peak,
            "spike_step": self._spike_step,
            "in_spike": self._in_spike,
            "plateau_start": self._plateau_start,
            "recent": list(self._recent),
            "high_since": self._high_since,
            "level": self._level,
            "learned_at": self._learned_at,
            "learned_below": self._learned_below,
            "below_at": self._below_at,
            "calm_since": self._calm_since,
            "window": [list(item) for item in self._window],
            "window_min": [list(item) for item in self._window_min],
            "verdict": None if verdict is None else dataclasses.asdict(verdict),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (of a monitor with the same chance level).

        Raises:
            ValueError: A state of another version or for another chance level.
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"state version must be {_STATE_VERSION} but got {state.get('version')!r}."
            )
        if state["chance_loss"] != self.chance_loss:
            raise ValueError(
                f"state chance_loss must equal the monitor's {self.chance_loss!r} but got "
                f"{state['chance_loss']!r}."
            )
        self._last_step = int(state["last_step"])
        self._running = state["running"]
        self._fast = state["fast"]
        self._reference = state["reference"]
        self._best = state["best"]
        self._spike_peak = state["spike_peak"]
        self._spike_step = state["spike_step"]
        self._in_spike = bool(state["in_spike"])
        self._plateau_start = state["plateau_start"]
        self._recent = deque(float(v) for v in state["recent"])
        self._high_since = state["high_since"]
        self._level = state["level"]
        self._learned_at = state["learned_at"]
        self._learned_below = state["learned_below"]
        self._below_at = state.get("below_at", self._learned_at)  # absent in older states
        self._calm_since = int(state["calm_since"])
        self._window = deque((int(s), float(v)) for s, v in state["window"])
        self._window_min = deque((int(s), float(v)) for s, v in state["window_min"])
        verdict = state["verdict"]
        self._verdict = None if verdict is None else Verdict(**verdict)
