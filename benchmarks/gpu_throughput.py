"""GPU throughput of a CIFAR ResNet trial, and trials per hour with several trials per card.

Everything runs on a synthetic dataset in CIFAR-10's exact format (a ``cifar-10-batches-py``
folder of python pickles, written to a temporary folder), so no real data is needed: 10 classes,
each image its class's fixed random pattern plus noise, so that a model learns and no divergence
rule stops a run. The model is ResNet-20 (``model = "resnet20"``), plain SGD with momentum 0.9,
batch 128, the standard augmentation (random crop with 4-pixel padding, horizontal flip).

1. **One trial, images per second** (training steps only, after a warm-up epoch), side by side
   on the same card in this run:

   - ``anchor``: a plain torchvision-style loop: a ``DataLoader`` whose worker processes crop
     and flip each image on the CPU, pinned memory, float32, standard memory order;
   - ``prl_tune fp32``: the built-in ``cifar10`` task through ``prl_tune.train``: the dataset on
     the GPU, augmentation on the GPU, float32;
   - ``prl_tune bf16 + channels_last``: the same with ``precision = "bf16"`` and
     ``channels_last = true`` (what ``studies/cifar100-resnet110.toml`` asks for on a GPU);
   - with ``--compile``, also ``torch.compile`` on top.

   Each prl_tune row gives its ratio to the anchor (the target is at least 3x) and the final
   validation accuracy of the timed run (so a faster setting that learns worse shows).

2. **Several trials per card**: a study of ``2 x K`` trials with ``K`` = 1, 2, 4, 8 trials at
   once on one card, through the Optuna workers (``workers = K``, ``workers_per_gpu = K``) and
   through the Ray backend with fractional GPUs (``gpus_per_trial = 1/K``). Each setting's time
   includes its processes' start-up. Printed: wall seconds, trials per hour, the peak GPU memory
   the card showed (``nvidia-smi``, sampled every 0.2 s), and the failed trials (out of memory
   shows there).

Without a CUDA GPU it prints one line and exits with code 1 before doing anything.

    python benchmarks/gpu_throughput.py [--images 50000] [--epochs 3] [--per-card 1 2 4 8]
        [--backends optuna ray] [--compile] [--skip-single] [--skip-concurrent]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from prl_tune import load_task, train
from prl_tune.config import StudySpec
from prl_tune.training import CIFAR_MODELS

CLASSES = 10
BATCH = 128
MODEL = "resnet20"
SGD = {"momentum": 0.9, "weight_decay": 5e-4}
PLRS = {"lr_min": 0.07, "lr_max": 0.1}  # the paper's CIFAR bounds
VAL_FRACTION = 0.02
_FOLDER = "cifar-10-batches-py"


# --- the synthetic dataset, in CIFAR-10's format ------------------------------------------------


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images as CIFAR stores them (uint8 rows of 3072, channel-major) and labels:
    each image is its class's fixed pattern plus noise, balanced classes."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(1234).integers(0, 256, (CLASSES, 3 * 32 * 32))
    labels = np.arange(count) % CLASSES
    rng.shuffle(labels)
    noise = rng.normal(0.0, 60.0, (count, 3 * 32 * 32))
    images = np.clip(patterns[labels] * 0.6 + 50 + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_synthetic_cifar10(root: Path, train_images: int, test_images: int) -> Path:
    """Write ``root/cifar-10-batches-py`` (five training batches and a test batch) as the
    CIFAR-10 python version is laid out; returns ``root``."""
    folder = root / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = synthetic_images(train_images, seed=0)
    for k, (part, part_labels) in enumerate(
        zip(np.array_split(images, 5), np.array_split(labels, 5), strict=True), start=1
    ):
        batch = {b"data": part, b"labels": part_labels.tolist(), b"batch_label": b"synthetic"}
        with open(folder / f"data_batch_{k}", "wb") as file:
            pickle.dump(batch, file)
    test, test_labels = synthetic_images(test_images, seed=1)
    with open(folder / "test_batch", "wb") as file:
        pickle.dump({b"data": test, b"labels": test_labels.tolist()}, file)
    return root


# --- one trial ----------------------------------------------------------------------------------


class _CpuAugmented(Dataset):
    """What a torchvision ``CIFAR10`` dataset with ``RandomCrop(32, padding=4)``,
    ``RandomHorizontalFlip()``, ``ToTensor()`` and ``Normalize`` does, per image, on the CPU."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images.reshape(-1, 3, 32, 32)
        self.labels = labels
        self.mean = self.images.mean(axis=(0, 2, 3)).reshape(3, 1, 1) / 255.0
        self.std = self.images.std(axis=(0, 2, 3)).reshape(3, 1, 1) / 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        padded = np.pad(self.images[index], ((0, 0), (4, 4), (4, 4)))
        top, left = np.random.randint(0, 9, size=2)
        image = padded[:, top : top + 32, left : left + 32]
        if np.random.rand() < 0.5:
            image = image[:, :, ::-1]
        image = (image.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(image.astype(np.float32)), int(self.labels[index])


def _read(path: Path) -> dict[bytes, Any]:
    with open(path, "rb") as file:
        return pickle.load(file, encoding="bytes")  # the file this benchmark wrote


def anchor_images_per_second(
    root: Path, *, device: str, epochs: int = 2, workers: int | None = None
) -> float:
    """A plain loop with CPU augmentation in ``DataLoader`` workers, float32, the same
    ResNet-20: training images per second over the epochs after the first (a warm-up)."""
    parts = [_read(root / _FOLDER / f"data_batch_{k}") for k in range(1, 6)]
    images = np.concatenate([p[b"data"] for p in parts])
    labels = np.concatenate([p[b"labels"] for p in parts])
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    loader = DataLoader(
        _CpuAugmented(images, labels),
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=workers > 0,
    )
    model = CIFAR_MODELS[MODEL](CLASSES).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=PLRS["lr_max"], **SGD)
    seconds = 0.0
    counted = 0
    for epoch in range(epochs):
        _synchronize(device)
        start = time.perf_counter()
        for inputs, targets in loader:
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            loss.backward()
            optimizer.step()
        _synchronize(device)
        if epoch > 0:
            seconds += time.perf_counter() - start
            counted += len(images)
    return counted / seconds


def prl_tune_images_per_second(
    root: Path, *, device: str, epochs: int = 2, **speed: Any
) -> tuple[float, float]:
    """The built-in ``cifar10`` task through ``prl_tune.train`` with ``speed`` (``precision``,
    ``channels_last``, ``compile``): training images per second over the epochs after the
    first, and the last epoch's validation accuracy. An epoch's time includes its validation
    pass (2% of the images, so the figure is a little low, never flattered)."""
    task = load_task(
        "cifar10",
        root=str(root),
        model=MODEL,
        device=device,
        batch_size=BATCH,
        val_fraction=VAL_FRACTION,
    )
    images = sum(int(x.shape[0]) for x, _ in task.train_loader)
    ends: list[float] = []

    def on_epoch(_metrics: Any) -> None:
        _synchronize(device)
        ends.append(time.perf_counter())

    result = train(
        task,
        epochs=epochs,
        scheduler="plrs",
        scheduler_params=PLRS,
        optimizer="sgd",
        optimizer_params=SGD,
        device=device,
        on_epoch=on_epoch,
        **speed,
    )
    if result.diverged or result.final is None:
        raise RuntimeError(f"the timed run diverged: {result.reason}")
    return images * (len(ends) - 1) / (ends[-1] - ends[0]), result.final.val_accuracy


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def single_trial_rows(
    root: Path, *, device: str, epochs: int, compile_too: bool
) -> list[tuple[str, float, float | None]]:
    """(setting, images per second, validation accuracy) for the anchor and each prl_tune
    setting."""
    settings: list[tuple[str, dict[str, Any]]] = [
        ("prl_tune fp32", {}),
        ("prl_tune bf16 + channels_last", {"precision": "bf16", "channels_last": True}),
    ]
    if compile_too:
        settings.append(
            (
                "prl_tune bf16 + channels_last + compile",
                {"precision": "bf16", "channels_last": True, "compile": True},
            )
        )
    _progress("one trial: anchor (DataLoader, CPU augmentation, fp32) ...")
    anchor = anchor_images_per_second(root, device=device, epochs=epochs)
    rows: list[tuple[str, float, float | None]] = [
        ("anchor: DataLoader + CPU augmentation, fp32", anchor, None)
    ]
    for name, speed in settings:
        _progress(f"one trial: {name} ...")
        rate, accuracy = prl_tune_images_per_second(root, device=device, epochs=epochs, **speed)
        rows.append((name, rate, accuracy))
    return rows


# --- several trials per card ---------------------------------------------------------------------


def study_spec(root: Path, storage: str, trials: int, epochs: int, device: str) -> StudySpec:
    """The concurrency study: random bounds in a stable range of the paper's, bf16 and
    channels-last, rules on, no base pruner."""
    return StudySpec.from_dict(
        {
            "study": {
                "name": "gpu-throughput",
                "n_trials": trials,
                "storage": storage,
                "sampler": "random",
                "seed": 0,
            },
            "task": {
                "name": "cifar10",
                "epochs": epochs,
                "device": device,
                "precision": "auto",
                "channels_last": True,
                "params": {
                    "root": str(root),
                    "model": MODEL,
                    "batch_size": BATCH,
                    "val_fraction": VAL_FRACTION,
                },
            },
            "optimizer": {"name": "sgd", **SGD},
            "space": {"lr_max": [0.05, 0.2], "lr_min_ratio": [0.5, 1.0]},
            "pruning": {"rules": True, "base": "none"},
        }
    )


class _PeakMemory:
    """The most GPU memory ``nvidia-smi`` showed in use while the block ran (MiB; ``None``
    without ``nvidia-smi``)."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        command = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=5).stdout
                used = int(out.split()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self.peak = used if self.peak is None else max(self.peak, used)
            self._stop.wait(0.2)

    def __enter__(self) -> _PeakMemory:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def concurrent_row(
    root: Path, folder: Path, backend: str, per_card: int, *, epochs: int, device: str
) -> tuple[str, int, int, int, float, int | None]:
    """(backend, trials per card, trials finished, trials failed, wall seconds, peak MiB)."""
    from optuna.trial import TrialState

    url = f"sqlite:///{folder / f'{backend}-{per_card}.db'}"
    spec = study_spec(root, url, 2 * per_card, epochs, device)
    with _PeakMemory() as memory:
        start = time.perf_counter()
        if backend == "optuna":
            from prl_tune.hosts.optuna import run_study

            spec = spec.with_study(workers=per_card, workers_per_gpu=per_card)
            study = run_study(spec, stream=None)
        else:
            from prl_tune.hosts.ray import run_study_ray

            cpus = max(1, (os.cpu_count() or 1) // per_card)
            spec = spec.with_ray(
                gpus_per_trial=1.0 / per_card,
                cpus_per_trial=cpus,
                max_concurrent=per_card,
                storage_path=str(folder / f"ray-{per_card}"),
            )
            study = run_study_ray(spec, stream=None)
        seconds = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    return backend, per_card, done, failed, seconds, memory.peak


def start_ray() -> None:
    """A local Ray with this machine's CPUs and GPUs; its workers import what this process
    does (``benchmarks/`` and the repository on their path)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    here = Path(__file__).resolve().parent
    paths = [str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, paths))}},
        )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (>= 2)")
    parser.add_argument("--per-card", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--backends", nargs="+", choices=("optuna", "ray"), default=["optuna", "ray"]
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-concurrent", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "gpu_throughput: no CUDA GPU here (torch.cuda.is_available() is False); run it on "
            "a GPU machine. Nothing was measured.",
            file=sys.stderr,
        )
        return 1
    if args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (the first is a warm-up) but got {args.epochs}")
    device = "cuda"
    name = torch.cuda.get_device_name()
    print(
        f"device: {name}; torch {torch.__version__}; {os.cpu_count()} CPUs; "
        f"{datetime.date.today().isoformat()}; ResNet-20, batch {BATCH}, "
        f"{args.images} synthetic CIFAR-10 images",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="prl_tune-gpu-throughput-") as name_:
        folder = Path(name_)
        root = write_synthetic_cifar10(folder / "data", args.images, 2_000)
        if not args.skip_single:
            rows = single_trial_rows(
                root, device=device, epochs=args.epochs, compile_too=args.compile
            )
            anchor = rows[0][1]
            print("\n| one trial | images/s | x anchor | val accuracy |")
            print("|---|---|---|---|")
            for setting, rate, accuracy in rows:
                shown = "-" if accuracy is None else f"{accuracy:.3f}"
                print(f"| {setting} | {rate:,.0f} | {rate / anchor:.2f} | {shown} |", flush=True)
        if not args.skip_concurrent:
            print(
                "\n| backend | trials per card | trials | failed | wall s | trials/hour | "
                "peak GPU MiB |"
            )
            print("|---|---|---|---|---|---|---|")
            try:
                for backend in args.backends:
                    if backend == "ray":
                        start_ray()
                    for per_card in args.per_card:
                        _progress(f"{backend}: {per_card} trials per card ...")
                        row = concurrent_row(
                            root, folder, backend, per_card, epochs=args.epochs, device=device
                        )
                        _, k, done, failed, seconds, peak = row
                        print(
                            f"| {backend} | {k} | {done} | {failed} | {seconds:.1f} | "
                            f"{3600 * done / seconds:.0f} | {peak if peak is not None else '-'} |",
                            flush=True,
                        )
            finally:
                if "ray" in sys.modules:
                    import ray

                    if ray.is_initialized():
                        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
