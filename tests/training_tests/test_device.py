from __future__ import annotations

import pytest
import torch

from prl_tune.training import select_device


def test_auto_picks_cuda_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
    assert select_device("auto").type == expected


def test_cpu_by_name_and_by_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1", torch.device("cuda")])
def test_cuda_unavailable_is_an_error(spec: str | torch.device) -> None:
    with pytest.raises(ValueError, match="requires CUDA"):
        select_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_beyond_visible_devices_is_an_error() -> None:
    assert select_device("cuda").type == "cuda"
    with pytest.raises(ValueError, match="device index"):
        select_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_unavailable_is_an_error() -> None:
    with pytest.raises(ValueError, match="requires MPS"):
        select_device("mps")


@pytest.mark.parametrize("spec", ["gpu", "", "cuda:x", "meta", "AUTO"])
def test_unknown_names_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="device must be"):
        select_device(spec)


def test_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"device must be a str or torch\.device"):
        select_device(0)  # type: ignore[arg-type]
