"""The built-in ``cifar10`` and ``cifar100`` tasks on tiny folders written here in the real
python-pickle format: reading, the data root, errors, the augmentation against a slow reference,
the models, and short training runs (ResNet-20, a few steps, on the CPU)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixtures.cifar_files import dump, write_cifar10, write_cifar100

from prl_tune._checks import ArgumentValueError
from prl_tune.cli import main
from prl_tune.config import load_spec
from prl_tune.training import (
    CIFAR_MODELS,
    DATA_ENV,
    TASK_NAMES,
    AugmentedBatches,
    Cifar100Options,
    CifarOptions,
    TaskData,
    load_task,
    resnet_cifar,
    train,
    wide_resnet,
)
from prl_tune.training._augment import crop_and_flip
from prl_tune.training._inmemory import TensorBatches

STUDY = Path(__file__).parents[2] / "studies" / "cifar100-resnet110.toml"


@pytest.fixture(autouse=True)
def _no_data_root(monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> None:
    """One torch thread (the machine is shared); no data root from the environment."""
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("data10"))


@pytest.fixture(scope="module")
def cifar100_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar100(tmp_path_factory.mktemp("data100"))


def _all(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _check_images(images: torch.Tensor, labels: torch.Tensor) -> None:
    """The images are the files' rows in (channel, row, column) order, with their labels."""
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
    rows, columns = torch.arange(32)[:, None], torch.arange(32)[None, :]
    assert torch.equal(images[:, 0], (2 * rows).expand(len(images), 32, 32).to(torch.uint8))
    assert torch.equal(images[:, 1], (64 + 2 * columns).expand(len(images), 32, 32).byte())
    assert torch.equal(images[:, 2, 0, 0].long() - 128, labels)


# --- reading -------------------------------------------------------------------------------


def test_cifar10_and_cifar100_are_built_in() -> None:
    assert {"cifar10", "cifar100"} <= set(TASK_NAMES)


def test_cifar10_reads_the_batches_splits_them_and_serves_the_official_test_set(
    cifar10_root: Path,
) -> None:
    task = load_task("cifar10", root=str(cifar10_root), augment=False, batch_size=32)
    assert isinstance(task, TaskData) and task.num_classes == 10
    x_train, y_train = _all(task.train_loader)
    x_val, y_val = _all(task.val_loader)
    x_test, y_test = _all(task.test_loader)
    assert (len(x_train), len(x_val), len(x_test)) == (90, 10, 20)  # val_fraction 0.1 of 100
    for images, labels in ((x_train, y_train), (x_val, y_val), (x_test, y_test)):
        _check_images(images, labels)
    assert sorted(y_val.tolist()) == list(range(10))  # stratified: one per class
    assert torch.equal(y_test, (torch.arange(20) + 5) % 10)  # test_batch, in file order
    assert [len(y) for _, y in task.train_loader] == [32, 32, 26]


def test_cifar100_reads_the_fine_labels(cifar100_root: Path) -> None:
    task = load_task("cifar100", root=str(cifar100_root), val_fraction=0.5)
    assert task.num_classes == 100
    x_val, y_val = _all(task.val_loader)
    x_test, y_test = _all(task.test_loader)
    _check_images(x_val, y_val)
    _check_images(x_test, y_test)
    assert sorted(y_val.tolist()) == list(range(100))
    assert torch.equal(y_test, torch.arange(100))  # fine labels, not the 20 coarse ones
    assert task.model(x_val[:2]).shape == (2, 100)


def test_the_model_standardizes_with_the_training_images_per_channel(cifar10_root: Path) -> None:
    task = load_task("cifar10", root=str(cifar10_root), augment=False)
    x_train, _ = _all(task.train_loader)
    standardized = task.model[0](x_train)
    assert standardized.dtype == torch.float32
    mean = standardized.double().mean(dim=(0, 2, 3))
    std = standardized.double().std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(mean, torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(std, torch.ones(3, dtype=torch.float64), atol=1e-5)
    expected = x_train.double().mean(dim=(0, 2, 3))
    assert torch.allclose(task.model[0].mean.flatten().double(), expected, rtol=1e-6)


def test_limit_uses_the_first_training_images_and_keeps_the_test_set(cifar10_root: Path) -> None:
    task = load_task("cifar10", root=str(cifar10_root), limit=40, val_fraction=0.25)
    assert len(_all(task.train_loader)[1]) + len(_all(task.val_loader)[1]) == 40
    assert len(_all(task.test_loader)[1]) == 20


def test_the_data_do_not_depend_on_the_seed_but_the_model_does(cifar10_root: Path) -> None:
    state = torch.get_rng_state()
    first, second = (load_task("cifar10", seed=s, root=str(cifar10_root)) for s in (0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(_all(first.val_loader)[0], _all(second.val_loader)[0])
    weights = [torch.cat([p.flatten() for p in t.model.parameters()]) for t in (first, second)]
    assert not torch.equal(*weights)


# --- the data root and its errors ----------------------------------------------------------


def test_prl_tune_data_gives_the_root_and_an_explicit_root_wins(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV, str(cifar10_root))
    assert CifarOptions().root == str(cifar10_root)
    assert load_task("cifar10").num_classes == 10
    with pytest.raises(ArgumentValueError, match="no cifar-10-batches-py there"):
        CifarOptions(root=str(tmp_path))  # the explicit root wins, and it has no data
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert CifarOptions(root=str(cifar10_root)).root == str(cifar10_root)
    with pytest.raises(ArgumentValueError, match=f"got {DATA_ENV}="):
        CifarOptions()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (CifarOptions, "must be a folder holding cifar-10-batches-py/ (data_batch_1..5, "
         "test_batch), as torchvision's CIFAR10(root) reads; got '{root}' (no "
         "cifar-10-batches-py there)."),
        (Cifar100Options, "must be a folder holding cifar-100-python/ (train, test), as "
         "torchvision's CIFAR100(root) reads; got '{root}' (no cifar-100-python there)."),
    ],
)  # fmt: skip
def test_a_missing_folder_is_one_line_naming_root_and_the_layout(
    options: type, fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(ArgumentValueError) as error:
        options(root=str(tmp_path))
    assert error.value.argument == "root"
    assert str(error.value) == "root " + fragment.format(root=tmp_path)
    assert "\n" not in str(error.value)


def test_no_root_and_no_environment_variable_says_both_ways(tmp_path: Path) -> None:
    with pytest.raises(ArgumentValueError, match=f"by the {DATA_ENV} environment variable; got "):
        CifarOptions()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ArgumentValueError, match=r"\(cifar-10-batches-py/data_batch_3 is missing"):
        CifarOptions(root=str(tmp_path))


def test_a_file_of_the_wrong_shape_is_named_when_read(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    wrong = {b"data": np.zeros((20, 1024), np.uint8), b"labels": [0] * 20}
    dump(tmp_path / "cifar-10-batches-py" / "data_batch_2", wrong)
    with pytest.raises(ArgumentValueError) as error:
        load_task("cifar10", root=str(tmp_path))
    assert error.value.argument == "root"
    assert "data_batch_2 holds b'data' of shape (20, 1024), not (N, 3072)" in str(error.value)


class _Payload:
    """Unpickling this runs ``os.getpid``: a stand-in for a file that would run code."""

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.getpid, ())


def test_a_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": _Payload()})
    with pytest.raises(
        ArgumentValueError, match=r"test_batch is not a CIFAR pickle: refused global"
    ):
        load_task("cifar10", root=str(tmp_path))


def test_files_written_with_numpy_1_are_read(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    for path in (tmp_path / "cifar-10-batches-py").glob("*_batch*"):
        numpy_2 = path.read_bytes()
        path.write_bytes(numpy_2.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert (
        b"numpy.core.multiarray" in (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    )
    x_test, y_test = _all(load_task("cifar10", root=str(tmp_path)).test_loader)
    _check_images(x_test, y_test)


def test_a_missing_folder_exits_2_before_the_store_is_touched(
    write_study: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-data"
    path, _ = write_study(task="cifar10", task_params=f"params = {{ root = '{missing}' }}")
    assert main(["tune", str(path)]) == 2
    assert not (tmp_path / "store.db").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("prl-tune: error: [task.params] root: must be a folder holding ")
    assert "cifar-10-batches-py/ (data_batch_1..5, test_batch)" in lines[0]


def test_the_shipped_study_file_validates_with_a_data_root(cifar100_root: Path) -> None:
    spec = load_spec(STUDY, overrides={"task.params.root": str(cifar100_root)})
    assert spec.task.name == "cifar100" and spec.task.params["model"] == "resnet110"
    assert spec.task.params["batch_size"] == 128 and spec.optimizer.momentum == 0.0
    assert spec.schedulers == ("plrs", "cosine", "onecycle", "knee", "multistep", "constant")


# --- augmentation --------------------------------------------------------------------------


def _reference(images: np.ndarray, top: Any, left: Any, flip: np.ndarray) -> np.ndarray:
    """One image at a time: pad with 4 zeros, cut the 32x32 window, mirror it."""
    out = np.empty_like(images)
    for k, image in enumerate(images):
        padded = np.pad(image, ((0, 0), (4, 4), (4, 4)))
        window = padded[:, top[k] : top[k] + 32, left[k] : left[k] + 32]
        out[k] = window[:, :, ::-1] if flip[k] else window
    return out


def test_crop_and_flip_equals_the_per_image_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=generator).to(torch.uint8)
    top, left = torch.randint(0, 9, (2, 64), generator=generator)
    flip = torch.randint(0, 2, (64,), generator=generator).bool()
    fast = crop_and_flip(images, top, left, flip)
    slow = _reference(images.numpy(), top.numpy(), left.numpy(), flip.numpy())
    assert fast.dtype == torch.uint8 and fast.is_contiguous()
    assert np.array_equal(fast.numpy(), slow)
    same = torch.full((64,), 4)
    assert torch.equal(crop_and_flip(images, same, same, torch.zeros(64, dtype=torch.bool)), images)


def _positions(count: int) -> torch.Tensor:
    """``count`` identical images whose every pixel holds 1 + its row * 32 + its column."""
    return (1 + torch.arange(32 * 32)).view(1, 1, 32, 32).expand(count, 3, 32, 32).contiguous()


def _draws(batches: AugmentedBatches) -> tuple[torch.Tensor, ...]:
    """Each augmented image's sample, its crop offsets (top, left) and flip, read off its pixels
    (the centre is never padding); asserts that each image is exactly that crop."""
    images, samples = _all(batches)
    centre = images[:, 0, 16, 16] - 1
    flip = images[:, 0, 16, 17] < images[:, 0, 16, 16]
    top = centre // 32 - 12
    left = torch.where(flip, centre % 32 - 11, centre % 32 - 12)
    expected = _reference(batches.inputs[samples].numpy(), top, left, flip.numpy())
    assert np.array_equal(images.numpy(), expected)
    return samples, top, left, flip


def test_augmented_batches_shift_by_at_most_4_pixels_and_flip_half_the_images() -> None:
    count = 4000
    batches = AugmentedBatches(_positions(count), torch.arange(count), 128, seed=0)
    samples, top, left, flip = _draws(batches)
    assert sorted(samples.tolist()) == list(range(count))  # every image once per pass
    for offsets in (top, left):  # a shift of -4 .. +4 pixels, each about 1/9 of the time
        assert offsets.min() >= 0 and offsets.max() <= 8
        shares = torch.bincount(offsets, minlength=9).double() / count
        assert torch.all((shares - 1 / 9).abs() < 0.025)  # the sd of a share is 0.005
    # A flip with probability 1/2: the sd of the share is 0.0079; 0.03 is 3.8 sd.
    assert abs(flip.double().mean().item() - 0.5) < 0.03


def test_augmented_batches_are_repeatable_and_resume_bit_exactly() -> None:
    images, targets = _positions(300), torch.arange(300)
    first, second = (AugmentedBatches(images, targets, 64, seed=3) for _ in range(2))
    for _ in range(2):  # two passes each
        for (x_a, y_a), (x_b, y_b) in zip(first, second, strict=True):
            assert torch.equal(x_a, x_b) and torch.equal(y_a, y_b)
    other = _all(AugmentedBatches(images, targets, 64, seed=4))
    assert not torch.equal(other[0], _all(AugmentedBatches(images, targets, 64, seed=3))[0])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # what a checkpoint writes
    buffer.seek(0)
    resumed = AugmentedBatches(images, targets, 64, seed=99)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for (x_a, y_a), (x_b, y_b) in zip(first, resumed, strict=True):
        assert torch.equal(x_a, x_b) and torch.equal(y_a, y_b)


def test_only_the_training_batches_are_augmented(cifar10_root: Path) -> None:
    task = load_task("cifar10", root=str(cifar10_root))
    assert isinstance(task.train_loader, AugmentedBatches)
    assert type(task.val_loader) is TensorBatches and type(task.test_loader) is TensorBatches
    assert type(load_task("cifar10", root=str(cifar10_root), augment=False).train_loader) is (
        TensorBatches
    )


# --- models and training -------------------------------------------------------------------


def test_the_resnets_have_the_parameter_counts_of_he_et_al() -> None:
    counts = {
        depth: sum(p.numel() for p in resnet_cifar(depth).parameters()) for depth in (20, 56, 110)
    }
    assert counts == {20: 269_722, 56: 853_018, 110: 1_727_962}  # 0.27M, 0.85M, 1.7M
    assert round(sum(p.numel() for p in wide_resnet(28, 10).parameters()) / 1e6, 1) == 36.5
    with pytest.raises(ArgumentValueError, match="depth must be 6n \\+ 2"):
        resnet_cifar(21)


@pytest.mark.parametrize("name", ["resnet20", "wrn16_4"])
def test_the_models_give_one_output_per_class(name: str) -> None:
    assert name in CIFAR_MODELS
    images = torch.randn(2, 3, 32, 32)
    assert CIFAR_MODELS[name](100)(images).shape == (2, 100)


def test_a_short_run_trains_and_scores_the_test_set(cifar10_root: Path) -> None:
    task = load_task("cifar10", seed=0, root=str(cifar10_root), batch_size=32)
    result = train(task, epochs=1, scheduler_params={"lr_min": 0.07, "lr_max": 0.1}, device="cpu")
    assert result.status == "completed" and result.steps == 3
    assert result.test_accuracy is not None and 0.0 <= result.test_accuracy <= 1.0


def test_a_resumed_run_with_augmentation_equals_the_uninterrupted_one(cifar10_root: Path) -> None:
    def run(resume: dict[str, Any] | None = None) -> tuple[Any, dict[int, bytes]]:
        task = load_task("cifar10", seed=2, root=str(cifar10_root), batch_size=45)
        states: dict[int, bytes] = {}

        def keep(metrics: Any, state: dict[str, Any]) -> None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            states[metrics.epoch] = buffer.getvalue()

        result = train(
            task,
            epochs=2,
            scheduler_params={"lr_min": 0.07, "lr_max": 0.1},
            device="cpu",
            seed=2,
            on_state=keep,
            resume=resume,
        )
        return result, states

    full, states = run()
    resumed, _ = run(torch.load(io.BytesIO(states[1]), weights_only=True))
    assert [m.train_loss for m in resumed.history] == [m.train_loss for m in full.history]
    assert resumed.history[-1].val_loss == full.history[-1].val_loss
    assert resumed.test_loss == full.test_loss
