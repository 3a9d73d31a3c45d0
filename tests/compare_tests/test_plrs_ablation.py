"""``studies/plrs-ablation.toml``: the paper's PLRS against its four variants, compared by
``prl-tune compare`` on a tiny budget (the digits MLP, 1 epoch, 2 trials and 2 seeds each)."""

from __future__ import annotations

from pathlib import Path

import optuna

from prl_tune.cli import main
from prl_tune.compare import plan_comparison
from prl_tune.config import load_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY = Path(__file__).parents[2] / "studies" / "plrs-ablation.toml"
VARIANTS = ("plrs", "plrs-epoch", "plrs-every8", "plrs-loguniform", "plrs-beta")


def test_the_ablation_compares_the_paper_plrs_with_each_variant() -> None:
    plan = plan_comparison(load_spec(STUDY))
    assert plan.schedulers == VARIANTS and plan.baseline == "plrs"
    # Every variant is tuned over the same bounds, task, optimizer, pruning and budget as PLRS:
    # only the scheduler (and the study's name) differ.
    base = plan.tuning_spec("plrs", 0).to_dict()
    for name in VARIANTS:
        data = plan.tuning_spec(name, 0).to_dict()
        assert data["space"] == {**base["space"], "schedulers": [name]}
        assert data["study"] == {**base["study"], "name": f"plrs-ablation/{name}/tuning-0"}
        for section in set(base) - {"space", "study"}:
            assert data[section] == base[section]


def test_the_shipped_ablation_study_runs_on_a_tiny_budget(tmp_path, capsys) -> None:
    storage = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(
        [
            "compare",
            str(STUDY),
            "--storage",
            storage,
            "--seeds",
            "2",
            "--set",
            "task.epochs=1",
            "--set",
            "comparison.trials=2",
            "--set",
            "task.params.model='mlp'",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for name in ("plrs (baseline)", *VARIANTS[1:]):
        assert f"\n{name} " in out or f"| {name} |" in out
    # Each variant's evaluation runs trained with its own choice: one LR per epoch for
    # plrs-epoch, and never for the paper's PLRS.
    runs = optuna.load_study(study_name="plrs-ablation/evaluation", storage=storage).trials
    by_scheduler: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for run in runs:
        by_scheduler.setdefault(run.user_attrs["scheduler"], []).append(run)
    assert set(by_scheduler) == set(VARIANTS)
    for name, scheduler_runs in by_scheduler.items():
        assert len(scheduler_runs) == 2
        for run in scheduler_runs:
            (epoch,) = run.user_attrs["history"]
            assert (epoch["lr_min"] == epoch["lr_max"]) is (name == "plrs-epoch")
