"""Which GPU each worker process of a command sees (``CUDA_VISIBLE_DEVICES``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from prl_tune._checks import integer


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may hand out: the entries of ``CUDA_VISIBLE_DEVICES`` when it is
    set (indices, ``GPU-<uuid>`` or ``MIG-<uuid>``, up to the first negative index, as CUDA
    reads it), else ``"0"``, ``"1"``, ... for ``torch.cuda.device_count()`` (counted through
    NVML, which does not initialize CUDA in this process).

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        import torch

        return [str(index) for index in range(torch.cuda.device_count())]
    gpus = []
    for entry in (part.strip() for part in listed.split(",")):
        if not entry or entry.startswith("-"):
            break
        gpus.append(entry)
    return gpus


def assign_gpus(gpus: Sequence[str], workers: int, workers_per_gpu: int = 1) -> list[str | None]:
    """The GPU of each of ``workers`` worker processes: ``workers_per_gpu`` consecutive workers
    share one, in the order of ``gpus``; past the last GPU it starts over at the first. With no
    GPU, ``None`` for each worker (its environment is left as it is).

    Example:
        >>> assign_gpus(["0", "1"], 3)
        ['0', '1', '0']
        >>> assign_gpus(["0", "1", "2", "3"], 4, workers_per_gpu=2)
        ['0', '0', '1', '1']

    Args:
        gpus: the visible GPUs (:func:`visible_gpus`).
        workers: the number of worker processes, ``>= 1``.
        workers_per_gpu: workers that share a GPU, ``>= 1`` (default 1: round-robin).
    """
    integer("workers", workers, minimum=1)
    integer("workers_per_gpu", workers_per_gpu, minimum=1)
    if not gpus:
        return [None] * workers
    return [gpus[(worker // workers_per_gpu) % len(gpus)] for worker in range(workers)]
