"""A study's budget in optimizer steps: what its trials ran, pruned and stopped ones included.

A trial records the steps it ran as its ``steps`` user attribute when it ends (completed, pruned
by a base pruner or the rules, or stopped by the memory before training with 0). A
:class:`StepBudget` decides, under the study's :class:`~prl_tune.store.BudgetLock`, whether one
more trial may start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from prl_tune._checks import integer
from prl_tune.store._study import uses_budget

#: Study user attribute: the study's budget in optimizer steps, set by a runner given one.
STEP_BUDGET_ATTR = "prl_tune.max_steps"


def trial_steps(trial: FrozenTrial) -> int:
    """The optimizer steps ``trial`` ran: its ``steps`` user attribute, 0 without one (a trial
    that has not ended, or whose code raised before training)."""
    steps = trial.user_attrs.get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else 0


def steps_used(trials: Iterable[FrozenTrial]) -> int:
    """The steps of the finished trials that use the study's budget
    (:func:`~prl_tune.store.uses_budget`): complete, pruned (by a base pruner, the rules or the
    memory) and failed by their own code. A trial failed because its process died is run again,
    so its steps do not count; nor do a running trial's, until it ends."""
    return sum(trial_steps(t) for t in trials if t.state != TrialState.RUNNING and uses_budget(t))


@dataclass(frozen=True)
class StepBudget:
    """A study's budget in optimizer steps, shared by every worker on every machine.

    A new trial may start while the steps of the finished trials plus ``trial_steps`` for each
    running one stay below ``steps`` (:meth:`allows_another`). A running trial is counted at the
    most it can run, because its steps are known only when it ends; the worker decides and asks
    for the trial under the study's budget lock, so the next worker, here or on another
    machine, sees it running. Hence every trial started when the final steps of all trials
    started before it were below ``steps``, and the study ends with its steps in ``[steps, steps
    + trial_steps)``: the last trial crosses the budget and finishes, however many workers run.
    (Fewer only when the trial budget ends the study first.)

    Example:
        >>> budget = StepBudget(steps=1000, trial_steps=170)  # 10 epochs of 17 batches
        >>> budget.allows_another(study.get_trials(deepcopy=False))  # doctest: +SKIP
        True

    Args:
        steps: the study's total, ``>= 1``.
        trial_steps: the most steps one trial runs (epochs x batches per epoch), ``>= 1``.

    Raises:
        ValueError: a value below 1; ``TypeError`` for a non-integer.
    """

    steps: int
    trial_steps: int

    def __post_init__(self) -> None:
        integer("steps", self.steps, minimum=1)
        integer("trial_steps", self.trial_steps, minimum=1)

    def committed(self, trials: Iterable[FrozenTrial]) -> int:
        """The steps of the finished trials that use the budget plus ``trial_steps`` for each
        running one: the most the study can end up with if no other trial starts."""
        total = 0
        for trial in trials:
            if trial.state == TrialState.RUNNING:
                total += self.trial_steps
            elif uses_budget(trial):
                total += trial_steps(trial)
        return total

    def allows_another(self, trials: Iterable[FrozenTrial]) -> bool:
        """Whether one more trial may start: :meth:`committed` is below ``steps``."""
        return self.committed(trials) < self.steps

    def spent(self, trials: Iterable[FrozenTrial]) -> bool:
        """Whether the finished trials have used the budget (:func:`steps_used` ``>= steps``)."""
        return steps_used(trials) >= self.steps
