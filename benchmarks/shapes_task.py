"""Does the learning-rate schedule matter on the ``shapes`` task? (what chose its defaults)

For each label-noise level, schedule, peak LR and seed, one run of the ``shapes`` CNN with the
split ``prl-tune compare`` uses (20% validation, 20% test), plain SGD, scored on the test split.
PLRS gets the band ``[lr / 2, lr]``. Prints one row per (label noise, LR, schedule): the test
accuracy's mean and sd over the seeds, the runs that diverged, and the CPU seconds per run.

    python benchmarks/shapes_task.py --label-noise 0 0.3 --lrs 0.05 0.15 0.4 \
        --schedulers constant knee onecycle --seeds 3

Torch uses one thread (``--threads``), so the CPU seconds per run are the figure that predicts a
study's time on an unshared core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import torch

from prl_tune.training import ShapesOptions, load_task, train


def _params(scheduler: str, lr: float) -> dict[str, float]:
    return {"lr_min": lr / 2, "lr_max": lr} if scheduler == "plrs" else {"lr": lr}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-noise", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--noise", type=float, default=ShapesOptions.noise)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.15, 0.4])
    parser.add_argument("--schedulers", nargs="+", default=["constant", "knee", "onecycle"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    print(f"shapes, noise {args.noise:g}, {args.epochs} epochs, seeds 1001-{1000 + args.seeds}")
    print("label_noise  lr      scheduler   test accuracy    diverged  cpu s/run")
    for label_noise in args.label_noise:
        for lr in args.lrs:
            for scheduler in args.schedulers:
                scores, diverged, cpu = [], 0, []
                for seed in range(1001, 1001 + args.seeds):
                    task = load_task(
                        "shapes",
                        seed=seed,
                        test_fraction=0.2,
                        noise=args.noise,
                        label_noise=label_noise,
                    )
                    before = _cpu_seconds()
                    result = train(
                        task,
                        epochs=args.epochs,
                        scheduler=scheduler,
                        scheduler_params=_params(scheduler, lr),
                        device="cpu",
                        seed=seed,
                    )
                    cpu.append(_cpu_seconds() - before)
                    if result.test_accuracy is None:
                        diverged += 1
                    else:
                        scores.append(result.test_accuracy)
                mean = statistics.mean(scores) if scores else float("nan")
                sd = statistics.stdev(scores) if len(scores) > 1 else float("nan")
                print(
                    f"{label_noise:<12g} {lr:<7g} {scheduler:<11} {mean:.3f} ± {sd:.3f}"
                    f"    {diverged}/{args.seeds}       {statistics.mean(cpu):.1f}",
                    flush=True,
                )
    print(
        f"wall {time.perf_counter() - started:.0f} s, CPU {_cpu_seconds() - cpu_started:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
