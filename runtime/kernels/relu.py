"""relu kernels: y = max(x, 0); dx = dy where y > 0 (backward reads the output only).

Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``)."""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary

_ZERO = np.float32(0.0)  # a float32 zero keeps float32 data float32 (and is exact in float64)


def relu(x):  # scalar functions are shared with the CUDA backend
    return _ZERO if x <= _ZERO else x  # NaN passes through, as in torch


def relu_grad(y, dy):
    return dy if y > _ZERO else _ZERO


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(relu)
_g = njit(cache=True, inline="always")(relu_grad)
_f_cuda = cuda.jit(device=True)(relu)
_g_cuda = cuda.jit(device=True)(relu_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@njit(cache=True)
def forward_cpu(x, y, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i])


@njit(cache=True)
def backward_cpu(y, dy, dx, acc, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(y[i], dy[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(y[i], dy[i])


@njit(cache=True, parallel=True)
def forward_par(x, y, nt):
    for t in prange(nt):
        forward_cpu(x, y, t * x.size // nt, (t + 1) * x.size // nt)


@njit(cache=True, parallel=True)
def backward_par(y, dy, dx, acc, nt):
    for t in prange(nt):
        backward_cpu(y, dy, dx, acc, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, True)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
