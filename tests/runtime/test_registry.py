"""Every op contract has a kernel module with a CPU binding, and the kernel
tests cover every op (the coverage check itself runs in conftest.py)."""

import inspect

import pytest

from netc.compiler.ops import OPS
from netc.runtime.kernels import KERNELS, kernel_module


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_cpu_kernels(op):
    assert op in KERNELS
    mod = kernel_module(op)
    assert callable(mod.bind_cpu)
    assert mod.__doc__, f"runtime/kernels/{op}.py needs a docstring"
    assert list(inspect.signature(mod.bind_cpu).parameters) == ["b"]


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_has_cuda_kernels(op):
    mod = kernel_module(op)
    assert callable(mod.bind_cuda), f"runtime/kernels/{op}.py has no bind_cuda (docs/cuda.md)"
    assert list(inspect.signature(mod.bind_cuda).parameters) == ["b"]
