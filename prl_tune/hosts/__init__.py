"""The hosts that run trials, one folder each, over the host-neutral core: ``optuna`` (runner,
objective, pruner) and ``ray`` (the Ray Tune trial scheduler)."""
