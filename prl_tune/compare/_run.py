"""``prl-tune compare``: tune every scheduler alike, evaluate on fresh seeds, build the table."""

from __future__ import annotations

import sys
from typing import IO

import optuna

from prl_tune.compare._evaluation import evaluate_schedulers
from prl_tune.compare._plan import plan_comparison, say
from prl_tune.compare._table import build_table
from prl_tune.compare._tuning import tune_schedulers
from prl_tune.config import StudySpec
from prl_tune.report import TABLE_ATTR, ComparisonTable
from prl_tune.store import check_storage_url


def run_comparison(
    spec: StudySpec, *, storage: str | None = None, stream: IO[str] | None = sys.stderr
) -> ComparisonTable:
    """Compare the study's schedulers with equal tuning budgets; returns the table.

    1. **Tuning**: one Optuna study per scheduler and tuning study (``"<name>/<scheduler>/
       tuning-<r>"``), all in the study's store, each with ``[comparison] trials`` trials (with
       ``budget = "steps"``: the same optimizer steps, ``run_study``'s ``max_steps``), the
       study's sampler and seed ``[study] seed + r``, its own base pruner, rules and memory,
       run by :func:`prl_tune.hosts.optuna.run_study`.
    2. **Evaluation**: each tuning study's best configuration re-trained with the evaluation
       seeds (``seed + 1000 + k``), full epochs, no pruning, scored on the test split (a
       built-in task holds one out in tuning and evaluation alike; a user task may return a
       ``test_loader``, else validation scores are reported and the table says so). Each run is
       a trial of the study ``"<name>/evaluation"``.
    3. **The table** (:func:`build_table`), stored on the evaluation study
       (:data:`TABLE_ATTR`) with the versions and device of the runs.

    Re-running it resumes: finished tuning studies and stored evaluation runs are not run
    again, and the same store gives the same table.

    Args:
        spec: the parsed study (its ``[comparison]`` section, or the defaults).
        storage: override of ``[study] storage``.
        stream: where progress goes (``None``: silent).

    Raises:
        SpecError: a tuning study of the same name with another configuration, a bad store,
            or a built-in task with ``test_fraction = 0``.
        WorkersFailed: as :func:`prl_tune.hosts.optuna.run_study`.
    """
    if storage is not None:
        spec = spec.with_study(storage=storage)
    check_storage_url(spec.storage)  # refused before the store is touched
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan_comparison(spec)
    if spec.study.backend != "optuna":
        say(stream, "[compare] runs on the Optuna backend ([study] backend is for prl-tune tune)")
    effort = (
        f"{plan.trials} tuning trials"
        if plan.step_budget is None
        else f"{plan.step_budget:,} tuning steps"
    )
    say(
        stream,
        f"[compare] {len(plan.schedulers)} schedulers x {effort} x "
        f"{plan.studies} tuning {'study' if plan.studies == 1 else 'studies'}, then "
        f"{len(plan.seeds)} evaluation seeds each; baseline {plan.baseline}",
    )
    tuned = tune_schedulers(plan, stream=stream)
    evaluation = evaluate_schedulers(plan, tuned, stream=stream)
    table = build_table(plan, tuned, evaluation)
    evaluation.set_user_attr(TABLE_ATTR, table.to_dict())
    return table
