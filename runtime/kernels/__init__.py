"""The kernel registry: op name -> kernel module (explicit, no import magic).

A kernel module defines ``bind_cpu(b: Binding) -> (forward, backward)``
(and, with the CUDA backend, ``bind_cuda``). Importing a kernel module
compiles nothing: numba compiles a kernel on its first call (or loads it
from the on-disk cache), so only the kernels a plan uses are ever compiled.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ...compiler.ops import OPS

# Filled in as kernels land; tests/runtime/test_registry.py checks coverage.
KERNELS: tuple[str, ...] = tuple(sorted(OPS))


def kernel_module(op: str) -> ModuleType:
    """The kernel module of an op (imported on first use)."""
    if op not in KERNELS:
        raise KeyError(f"no kernels for op '{op}'")
    return importlib.import_module(f"{__name__}.{op}")
