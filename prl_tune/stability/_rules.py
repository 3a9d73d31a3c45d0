"""Divergence rules on the per-step training loss (pure Python; every host feeds it floats)."""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prl_tune._checks import ArgumentTypeError, flag, integer, known_keys, real

VERDICT_KINDS: tuple[str, ...] = ("non-finite", "exploded", "collapsed", "rising")
"""The values :attr:`Verdict.kind` can take, in the order the rules are checked each step."""

_STATE_VERSION = 2
# A spike is forgiven once the running loss falls below this share of the chance level: the run
# has learned since, so a later stretch at chance level is not a consequence of that spike.
_RECOVERED = 0.5


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
    when the chance level is unknown. Every step is checked, in this order:

    1. ``nonfinite``: a NaN or infinite step loss stops the run at that step.
    2. explosion: the running loss above ``explode_factor`` x reference.
    3. collapse (needs the chance level): after a *spike* (running loss above
       ``spike_factor`` x reference), a faster running loss (weight ``collapse_smoothing``)
       stays within ``collapse_tolerance`` (relative) of the chance level for
       ``collapse_window`` consecutive steps once the spike is over: the model has stopped
       predicting anything better than the class prior and does not come back. A spike the
       run recovers from (running loss below half the chance level afterwards, until the next
       spike), or a slow start near chance without a spike, never fires.
    4. rise (off by default): the running loss stays above ``rise_factor`` x its best value
       from before the window for ``rise_window`` consecutive steps.

    The defaults were chosen on recorded loss traces (``tests/stability_tests/traces.json``);
    the figures behind them are in ``benchmarks/README.md``.

    Args:
        check_every: Steps between two checks in the training loop (default 8); the loop brings
            the step losses to the host only then, so a rule fires at most this many steps late.
            The loop's first checks come sooner, after steps 1, 2, 4, ... (doubling up to
            ``check_every``), so a run that explodes at once stops within a step or two.
        nonfinite: Stop on a non-finite step loss (default True). When False, non-finite steps
            are skipped (not folded into the running loss).
        explode_factor: Explosion threshold relative to the reference, ``> 1``; ``None``
            disables the rule (default 10.0).
        spike_factor: What counts as a spike before a collapse, relative to the reference,
            ``> 1`` (default 2.0).
        collapse_window: Steps at chance level after a spike that mean a collapse, ``>= 1``;
            ``None`` disables the rule (default 16).
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
    spike_factor: float = 2.0
    collapse_window: int | None = 16
    collapse_tolerance: float = 0.1
    collapse_smoothing: float = 0.3
    rise_window: int | None = None
    rise_factor: float = 5.0
    smoothing: float = 0.1

    def __post_init__(self) -> None:
        integer("check_every", self.check_every, minimum=1)
        flag("nonfinite", self.nonfinite)
        real("explode_factor", self.explode_factor, low=1, low_open=True, optional=True)
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
        step: The 1-based optimizer step at which the rule fired (for ``"non-finite"``: the
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
    their losses. The ratio rules (explosion, spike, rise) need a reference ``> 0``; when the
    first step's loss is ``<= 0`` and no chance level is given they stay off.

    Args:
        rules: The thresholds.
        chance_loss: The loss of a model that predicts the class prior, ``ln C`` for
            cross-entropy over ``C`` balanced classes; ``None`` (default) when unknown, which
            turns the collapse rule off.
    """

    def __init__(self, rules: StabilityRules, *, chance_loss: float | None = None) -> None:
        if not isinstance(rules, StabilityRules):
            raise ArgumentTypeError(
                "rules", f"must be a StabilityRules but got {type(rules).__name__} {rules!r}."
            )
        real("chance_loss", chance_loss, low=0, low_open=True, optional=True)
        self.rules = rules
        self.chance_loss = None if chance_loss is None else float(chance_loss)
        self._last_step = 0
        self._running: float | None = None
        self._fast: float | None = None  # the faster running loss the chance band judges
        self._reference: float | None = None
        self._best: float | None = None  # best running loss before the rise window
        self._spike_peak: float | None = None
        self._spike_step: int | None = None
        self._in_spike = False
        self._plateau_start: int | None = None
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
            ValueError: ``first_step`` is before a step already observed, or below 1.
        """
        if self._verdict is not None:
            return self._verdict
        integer("first_step", first_step, minimum=1)
        if first_step <= self._last_step or first_step < 1:
            raise ValueError(
                f"first_step must be > the last step observed ({self._last_step}) and >= 1 but "
                f"got {first_step}."
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
        if self._running is None:
            self._running = self._fast = loss
            chance = self.chance_loss
            self._reference = loss if chance is None else max(chance, loss)
        else:
            self._running += rules.smoothing * (loss - self._running)
            fast = loss if self._fast is None else self._fast
            self._fast = fast + rules.collapse_smoothing * (loss - fast)
        running = self._running
        reference = self._reference
        if reference is None or reference <= 0.0:
            return None
        if rules.explode_factor is not None and running > rules.explode_factor * reference:
            return Verdict(
                "exploded",
                step,
                f"exploded: running loss {running:.4g} above {rules.explode_factor:g} x the "
                f"reference {reference:.4g} at step {step}",
            )
        verdict = self._check_collapse(step, running, reference)
        if verdict is None and rules.rise_window is not None:
            verdict = self._check_rise(step, running, rules.rise_window)
        return verdict

    def _check_collapse(self, step: int, running: float, reference: float) -> Verdict | None:
        rules = self.rules
        if running > rules.spike_factor * reference:
            if not self._in_spike or self._spike_peak is None or running > self._spike_peak:
                self._spike_peak, self._spike_step = running, step
            self._in_spike = True
        else:
            self._in_spike = False
        chance = self.chance_loss
        if chance is not None and running < _RECOVERED * chance:
            self._spike_peak = self._spike_step = None
        if rules.collapse_window is None or chance is None or self._spike_step is None:
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
        return Verdict(
            "collapsed",
            step,
            f"collapsed: loss at chance level {chance:.4g} for {steps} steps after a spike to "
            f"{self._spike_peak:.4g} at step {self._spike_step}",
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
        self._window = deque((int(s), float(v)) for s, v in state["window"])
        self._window_min = deque((int(s), float(v)) for s, v in state["window_min"])
        verdict = state["verdict"]
        self._verdict = None if verdict is None else Verdict(**verdict)
