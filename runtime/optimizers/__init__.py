"""The optimizer kernel registry: family name -> update-kernel module.

Each family of ``netc.compiler.optimizers`` (the numba-free contracts) has a
module here defining ``update_cpu(opt)`` and ``update_cuda(opt)``: one update of every
trainable parameter of an ``Optimizer`` / ``CudaOptimizer`` (reading
``opt.kind``, ``opt.hp``, ``opt.t``, ``opt.p``, ``opt.g``, ``opt.segs``,
``opt.row(slot)``, and on the GPU ``opt.segs_d``, ``opt.starts_d``,
``opt.grid``), each launching module-level jitted kernels so numba's disk
cache keeps them. On the CPU a family's ``update_cpu`` is ``base.update_cpu``, which runs its
``launch_cpu(opt)`` (a ``runtime.launch.Launch`` over the buffers and the float64 array
``opt.hyper``) after ``hyper_cpu(opt, t)`` has filled that array with step t's scalars: the update
is data, which the whole-step function (``runtime.wholestep``) includes. ``check`` is what a
complete registration has; the registry test runs it over every family and over deliberately
incomplete fakes.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

from ...compiler import optimizers as contracts
from ...compiler.optimizers.base import COMMON_FIELDS
from ..numba_setup import install as _install_numba_setup

_install_numba_setup()  # before any kernel compiles

# Filled from the contracts: every family must have a kernel module (``check``).
KERNELS: tuple[str, ...] = contracts.NAMES


def kernel_module(family: str) -> ModuleType:
    """The update-kernel module of an optimizer family (imported on first use)."""
    if family not in KERNELS:
        raise KeyError(f"no update kernels for optimizer family '{family}'")
    return importlib.import_module(f"{__name__}.{family}")


def check(contract: Any, kernels: ModuleType | None, docs: str) -> list[str]:
    """What a family's registration lacks, one line each (empty when complete):
    the contract's parts (name, docstring, types with torch class and defaults,
    a schema fragment for every field, slot names for every ledger key its
    types and implied keys reach), the CPU and CUDA update kernels, and a row
    per type in the optimizer tables of docs/training.md (``docs``, its text)."""
    name = getattr(contract, "name", None)
    who = f"optimizer family {name!r}"
    missing: list[str] = []
    if not isinstance(name, str) or not name:
        missing.append(f"{who}: the contract has no name")
    if not (getattr(contract, "doc", None) or "").strip():
        missing.append(f"{who}: the contract has no docstring")
    types = getattr(contract, "types", None) or {}
    if not types:
        missing.append(f"{who}: the contract declares no types")
    own = getattr(contract, "fields", None) or {}
    slots = getattr(contract, "slots", None)
    if not isinstance(slots, dict):
        missing.append(f"{who}: the contract has no slots (ledger key -> state slot names)")
        slots = {}
    for kind, spec in types.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
            missing.append(f"{who}: type {kind!r} needs (torch class, defaults)")
            continue
        defaults = spec[1]
        if "lr" not in defaults:
            missing.append(f"{who}: type {kind!r} has no default lr")
        for field in defaults:
            if field not in own and field not in COMMON_FIELDS:
                missing.append(f"{who}: field {field!r} of type {kind!r} has no schema fragment")
        try:
            key = contract.key(kind, dict(defaults))
        except Exception as e:
            missing.append(f"{who}: key({kind!r}, defaults) failed: {e}")
            continue
        if key not in slots:
            missing.append(f"{who}: ledger key {key!r} of type {kind!r} has no slot names")
        if not re.search(rf"^\| `{re.escape(kind)}` \|", docs, re.M):
            missing.append(f"{who}: docs/training.md has no optimizer table row for type {kind!r}")
    for key, (kind, _) in (getattr(contract, "implies", None) or {}).items():
        if key not in slots:
            missing.append(f"{who}: implied ledger key {key!r} has no slot names")
        if kind not in types:
            missing.append(f"{who}: implied ledger key {key!r} names unknown type {kind!r}")
    if kernels is None:
        missing.append(f"{who}: no kernel module runtime/optimizers/{name}.py")
    else:
        for part, what in (("update_cpu", "CPU"), ("update_cuda", "CUDA")):
            if not callable(getattr(kernels, part, None)):
                missing.append(f"{who}: runtime/optimizers/{name}.py has no {what} update {part}(opt)")
    return missing
