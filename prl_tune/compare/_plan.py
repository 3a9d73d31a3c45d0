"""The protocol of a comparison, derived once from a study's spec: which sub-studies it tunes,
which seeds it evaluates, and the spec of every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import IO, Any

from prl_tune.config import ComparisonSettings, SpecError, StudySpec, steps_per_trial
from prl_tune.training import BUILTIN_TASKS

#: The share of the samples a built-in task holds out as its test split, unless ``[task]
#: params`` sets ``test_fraction``.
TEST_FRACTION = 0.2
#: With ``budget = "steps"`` a tuning study also ends at this many times the trials its step
#: budget pays for at full length: a guard against trials that cost no steps (a range the memory
#: blocks before training, a task that raises at once), which would otherwise never end it.
TRIAL_CAP_FACTOR = 10


@dataclass(frozen=True)
class ComparisonPlan:
    """What ``prl-tune compare`` runs for a study; build it with :func:`plan_comparison`.

    Args:
        spec: the study as the comparison runs it: a built-in task with its test split.
        settings: the ``[comparison]`` section (its defaults when the file has none).
        schedulers: the schedulers compared, in the order of ``[space] schedulers``.
        trials: tuning trials per scheduler in each tuning study (``budget = "steps"``: the
            full trials the default step budget pays for).
        studies: independent tuning studies per scheduler.
        seeds: the evaluation seeds (each differs from every tuning seed).
        baseline: the scheduler the confidence intervals compare against.
        test_split: whether the task is known to hold out a test split (a built-in task); a
            user task may return a ``test_loader`` of its own, which the runs record.
        budget: ``"trials"`` or ``"steps"``: what every tuning study gets the same of.
        step_budget: with ``budget = "steps"``, the optimizer steps of each tuning study.
        trial_steps: with ``budget = "steps"``, the steps of one full trial (epochs x batches
            per epoch of the task, with its test split held out).
    """

    spec: StudySpec
    settings: ComparisonSettings
    schedulers: tuple[str, ...]
    trials: int
    studies: int
    seeds: tuple[int, ...]
    baseline: str
    test_split: bool
    budget: str = "trials"
    step_budget: int | None = None
    trial_steps: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def evaluation_name(self) -> str:
        """The study that holds the evaluation runs and the table."""
        return f"{self.spec.name}/evaluation"

    def tuning_name(self, scheduler: str, repeat: int) -> str:
        return f"{self.spec.name}/{scheduler}/tuning-{repeat}"

    def tuning_seed(self, repeat: int) -> int:
        """The sampler and training seed of tuning study ``repeat``."""
        return self.spec.seed + repeat

    @property
    def tuning_seeds(self) -> tuple[int, ...]:
        return self.settings.tuning_seeds(self.spec.seed)

    @property
    def tuning_trials(self) -> int:
        """Each tuning study's trial budget: ``trials``; with ``budget = "steps"`` the cap of
        :data:`TRIAL_CAP_FACTOR` times the full trials the step budget pays for."""
        if self.step_budget is None or self.trial_steps is None:
            return self.trials
        return TRIAL_CAP_FACTOR * -(-self.step_budget // self.trial_steps)

    def tuning_spec(self, scheduler: str, repeat: int) -> StudySpec:
        """One scheduler's tuning study: the same task, optimizer, sampler, pruning, rules and
        memory, the space restricted to ``scheduler`` and no warm start (``[space]
        warm_start = "none"``, which only PLRS could use), its own name, seed and trial budget
        (:attr:`tuning_trials`; the step budget is handed to the runner)."""
        data = self.spec.to_dict()
        data["study"].update(
            name=self.tuning_name(scheduler, repeat),
            seed=self.tuning_seed(repeat),
            n_trials=self.tuning_trials,
        )
        data["space"]["schedulers"] = [scheduler]
        # No warm start: the range test could place only PLRS's first trials and search, an
        # advantage the baselines would not get.
        data["space"].update(warm_start="none", warm_start_span=0.0)
        data.pop("comparison", None)
        return StudySpec.from_dict(data, source=self.spec.source)

    def evaluation_spec(self) -> StudySpec:
        """The evaluation study's spec (what its store records; no trial is run from it)."""
        return self.spec.with_study(name=self.evaluation_name)

    @staticmethod
    def run_spec(tuning: StudySpec, seed: int) -> StudySpec:
        """One evaluation run of a tuning study's resolved spec: seed ``seed``, no pruning
        (only the non-finite stop of the rules remains: a NaN model has no score)."""
        data = tuning.to_dict()
        data["study"]["seed"] = seed
        data["pruning"].update(base="none", rules=False)
        return StudySpec.from_dict(data, source=tuning.source)


def plan_comparison(spec: StudySpec) -> ComparisonPlan:
    """The comparison of ``spec``'s schedulers; ``[comparison]`` defaults when it has none.

    A built-in task gets a test split: ``[task] params.test_fraction`` if set, else
    :data:`TEST_FRACTION`, in tuning and in evaluation alike (so no tuning trial is ever scored on
    a sample of it). With ``budget = "steps"`` the task is built once to count the batches of an
    epoch (the step budget's default is ``trials`` full trials).

    Raises:
        SpecError: ``[task] params.test_fraction = 0`` (a comparison needs a test split).
    """
    settings = spec.comparison or ComparisonSettings()
    schedulers = tuple(spec.schedulers)
    builtin = BUILTIN_TASKS.get(spec.task.name)
    test_split = builtin is not None and any(
        f.name == "test_fraction" for f in dataclasses.fields(builtin[0])
    )
    if test_split:
        spec = _with_test_split(spec)
    trials = settings.tuning_trials(spec.n_trials, schedulers)
    step_budget = trial_steps = None
    if settings.budget == "steps":
        trial_steps = steps_per_trial(spec)
        step_budget = settings.step_budget(trials, trial_steps)
    return ComparisonPlan(
        spec=spec,
        settings=settings,
        schedulers=schedulers,
        trials=trials,
        studies=settings.studies,
        seeds=settings.evaluation_seeds(spec.seed),
        baseline=settings.baseline_of(schedulers),
        test_split=test_split,
        budget=settings.budget,
        step_budget=step_budget,
        trial_steps=trial_steps,
    )


def _with_test_split(spec: StudySpec) -> StudySpec:
    params: dict[str, Any] = dict(spec.task.params)
    given = params.get("test_fraction")
    if given is not None and given == 0:
        raise SpecError(
            "[task] params.test_fraction: prl-tune compare scores on a test split, so it must be "
            f"> 0 (leave it out for {TEST_FRACTION}) but got {given!r}."
        )
    params.setdefault("test_fraction", TEST_FRACTION)
    data = spec.to_dict()
    data["task"]["params"] = params
    return StudySpec.from_dict(data, source=spec.source)


def say(stream: IO[str] | None, line: str) -> None:
    """A progress line of the comparison (nothing when ``stream`` is ``None``)."""
    if stream is not None:
        print(line, file=stream, flush=True)
