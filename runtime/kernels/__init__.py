"""The kernel registry: op name -> kernel module (explicit, no import magic), and what a
kernel module must provide.

A kernel module ``runtime/kernels/<op>.py`` defines ``bind_cpu(b: Binding) -> (forward,
backward)`` and ``bind_cuda(b)`` (docs/cuda.md). ``bind_cpu``'s thunks are ``runtime.launch``
data (``Launch(kernel, *args)`` of a module-level ``@njit`` kernel, ``Seq``, ``nothing``): a plan
whose thunks all are runs its step as one native function (``runtime.wholestep``).

Importing a kernel module compiles nothing: numba compiles a kernel on its first call (or loads
it from the on-disk cache), so only the kernels a plan uses are ever compiled. ``missing_parts``
lists what an op lacks, contract and kernels together; tests/runtime/test_registry.py runs it on
every op.

The modules whose names start with ``_`` are helpers the kernel modules share, named by what
they hold: ``_views`` (no-copy array views), ``_pointwise`` (elementwise binders and the
vectorizable exp, CPU and CUDA), ``_softmax`` (row reductions along an axis), ``_losses``
(reduction scale, pointwise-loss binders), ``_ids`` (label and id checks), ``_tables``
(per-sample tables), ``_copies`` (copy and gather kernels), ``_windows`` (conv and pool window
geometry), ``_conv_direct`` (direct convolution for single-channel layers), ``_conv_gemm``
(im2col + GEMM convolution), ``_epilogue`` (activations fused into the kernel before them),
``_fold`` (batchnorm folded into the weights of an inference plan), ``_blas`` (matrix products,
BLAS's thread count), ``_recurrent`` and ``_recurrent_cuda`` (the engine of rnn, lstm and gru) and
``cuda_core`` (the CUDA primitives).
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

from ...compiler.ops import OPS, missing_facts
from ...compiler.ops.base import Op
from ..numba_setup import install as _install_numba_setup

_install_numba_setup()  # before any kernel compiles

# Filled in as kernels land; tests/runtime/test_registry.py checks coverage.
KERNELS: tuple[str, ...] = tuple(sorted(OPS))

#: The functions every kernel module defines, each taking the op's Binding as its only argument.
BINDERS = ("bind_cpu", "bind_cuda")


def kernel_module(op: str) -> ModuleType:
    """The kernel module of an op (imported on first use)."""
    if op not in KERNELS:
        raise KeyError(f"no kernels for op '{op}'")
    return importlib.import_module(f"{__name__}.{op}")


def missing_kernels(name: str, module: ModuleType | None = None) -> list[str]:
    """What the kernel module of op ``name`` lacks (``module``, or else
    runtime/kernels/<name>.py): a docstring and each of ``BINDERS`` with the signature ``(b)``."""
    if module is None:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            return [f"kernels: no module runtime/kernels/{name}.py"]
    out = [] if module.__doc__ else [f"kernels: runtime/kernels/{name}.py has no docstring"]
    for binder in BINDERS:
        fn = getattr(module, binder, None)
        if not callable(fn):
            out.append(f"kernels: runtime/kernels/{name}.py has no {binder} (docs/cuda.md)")
        elif list(inspect.signature(fn).parameters) != ["b"]:
            out.append(f"kernels: {binder} of runtime/kernels/{name}.py must take one argument, b")
    return out


def missing_parts(op: Op, module: ModuleType | None = None) -> list[str]:
    """Everything a registered op lacks: the facts of its contract (``missing_facts``) and the
    parts of its kernel module (``missing_kernels``), one line each; empty when complete."""
    out = missing_facts(op)
    name = getattr(op, "name", None)
    if name and OPS.get(name) is not op:
        out.append(f"registry: '{name}' is not in compiler/ops NAMES")
    return out + (missing_kernels(name, module) if name else [])
