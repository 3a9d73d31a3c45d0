"""``benchmarks/gpu_throughput.py`` on the CPU: its synthetic data is a CIFAR-10 folder the
built-in task reads and learns, its measurements run end to end, and without a GPU it stops at
once with one clear line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import gpu_throughput as bench
import numpy as np
import pytest
import torch

from prl_tune import load_task

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bench.write_synthetic_cifar10(tmp_path_factory.mktemp("cifar"), 640, 100)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a GPU: the benchmark would run in full"
)
def test_without_a_gpu_it_says_so_in_one_line_and_exits_1_at_once() -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_throughput.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no CUDA GPU" in done.stderr
    assert time.perf_counter() - start < 60  # the imports only; nothing is trained


def test_the_synthetic_folder_is_cifar10_as_the_task_reads_it(root: Path) -> None:
    task = load_task("cifar10", root=str(root), model="resnet20", val_fraction=0.1)
    images = torch.cat([x for x, _ in task.val_loader] + [x for x, _ in task.train_loader])
    labels = torch.cat([y for _, y in task.val_loader] + [y for _, y in task.train_loader])
    assert images.shape == (640, 3, 32, 32)
    assert torch.bincount(labels, minlength=10).tolist() == [64] * 10  # balanced
    test = torch.cat([y for _, y in task.test_loader])
    assert test.shape == (100,)
    raw, _ = bench.synthetic_images(640, seed=0)
    assert raw.dtype == np.uint8 and raw.shape == (640, 3072)


def test_the_synthetic_classes_can_be_learned() -> None:
    # Each class is its own pattern plus noise: a nearest-class-mean rule fitted on one sample
    # classifies a fresh sample far above chance (0.1), so timed runs learn, and no divergence
    # rule takes a learning run for a dead one.
    train_x, train_y = bench.synthetic_images(1000, seed=0)
    test_x, test_y = bench.synthetic_images(500, seed=1)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in range(10)])
    distances = ((test_x[:, None, :].astype(float) - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == test_y).mean() > 0.9


def test_both_single_trial_measurements_run_and_give_rates(root: Path) -> None:
    anchor = bench.anchor_images_per_second(root, device="cpu", epochs=2, workers=0)
    rate, accuracy = bench.prl_tune_images_per_second(
        root, device="cpu", epochs=2, precision="bf16", channels_last=True
    )
    assert math.isfinite(anchor) and anchor > 0
    assert math.isfinite(rate) and rate > 0
    assert 0.0 <= accuracy <= 1.0


def test_the_concurrency_study_is_valid_and_its_trials_share_the_card(root: Path) -> None:
    spec = bench.study_spec(root, "sqlite:///unused.db", 4, 2, "cpu")
    assert spec.task.name == "cifar10" and spec.task.channels_last
    assert spec.with_study(workers=4, workers_per_gpu=4).study.workers_per_gpu == 4
