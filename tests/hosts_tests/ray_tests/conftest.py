"""A real local Ray instance, started once for the Ray host's tests and stopped after them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray
from fixtures import ray_trainables


@pytest.fixture(scope="package")
def local_ray() -> Iterator[None]:
    # Trainables are shipped by value: the Ray workers do not have tests/ on their path.
    ray.cloudpickle.register_pickle_by_value(ray_trainables)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
