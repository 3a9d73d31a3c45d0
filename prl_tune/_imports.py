"""Lazy imports of optional dependencies, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is needed for this feature but could not be imported ({exc}); "
            f"install it with: pip install 'prl_tune[{extra}]'"
        ) from exc


def import_ray_tune() -> ModuleType:
    """Return ``ray.tune`` (the ``ray`` extra)."""
    return import_optional("ray.tune", "ray")
