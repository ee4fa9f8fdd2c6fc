"""The backends: one module per device, each defining ``BACKEND`` (a ``base.Backend``), listed
in ``NAMES``. ``get(name)`` is how everything else reaches a device: ``device.make_executor``
picks one for ``--device``, an executor knows its own (``ex.backend``), and the trainer asks it
for the buffer operations and the optimizer class. Adding a device (or a wrapper such as a
data-parallel one) is one new module here plus its name in ``NAMES``; ``missing_parts`` names
what a backend lacks, and the registry test runs it on every backend."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend, DeviceError, Executor

NAMES = ("cpu", "cuda")

_REQUIRED_METHODS = ("usable", "executor", "buffers", "optimizer_class", "owns")


def get(name: str) -> Backend:
    """The backend called ``name`` (its module is imported on first use)."""
    if name not in NAMES:
        raise DeviceError(f"unknown device '{name}'; expected one of: {', '.join(NAMES)}")
    return importlib.import_module(f".{name}", __name__).BACKEND


def missing_parts(backend: Any) -> list[str]:
    """What ``backend`` lacks of the ``Backend`` contract, by name (empty when complete)."""
    out = [
        f"class attribute {a}"
        for a in ("name", "bind_attr", "epilogues_attr", "doc")
        if not getattr(backend, a, None)
    ]
    for m in _REQUIRED_METHODS:
        impl = getattr(type(backend), m, None)
        if impl is None or impl is getattr(Backend, m, None):
            out.append(f"method {m}")
    return out


def owning(array: Any) -> Backend:
    """The backend whose device holds ``array``."""
    for name in NAMES:
        b = get(name)
        if b.owns(array):
            return b
    raise DeviceError(f"no backend holds an array of type {type(array).__name__}")


__all__ = ["NAMES", "Backend", "DeviceError", "Executor", "get", "missing_parts", "owning"]
