"""log_softmax kernels along a per-sample axis: y = x - max - log Σ exp(x - max).

Same [outer, size, inner] layout as softmax, with contiguous, vectorized rows for the last
axis (inner = 1). Backward: dx = dy - exp(y) · Σ dy, reading the output only.

On the GPU one block handles each (outer, inner) row (``_softmax.bind_rows_cuda``):
``cuda_core.block_max`` and ``cuda_core.block_sum`` of exp(x - max) (float64, fixed tree order) give
the shift; backward is one ``block_sum`` of dy per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import fast_exp
from ._softmax import bind_rows, bind_rows_cuda, row_max, row_sum, row_sum_exp
from .cuda_core import THREADS  # a shared array's shape must be an int global of this module

_jit = njit(cache=True, error_model="numpy")


@_jit
def _forward_row(x, y):
    m = row_max(x)
    shift = m + math.log(row_sum_exp(x, m))
    for d in range(x.size):
        y[d] = x[d] - shift


@_jit
def _backward_row(y, dy, dx, acc):
    s = row_sum(dy)
    if acc:
        for d in range(y.size):
            dx[d] += dy[d] - fast_exp(y[d]) * s
    else:
        for d in range(y.size):
            dx[d] = dy[d] - fast_exp(y[d]) * s


@_jit
def _forward_strided(x, y, o):
    for j in range(x.shape[2]):
        m = x[o, 0, j]
        for d in range(1, x.shape[1]):
            m = max(m, x[o, d, j])
        s = 0.0
        for d in range(x.shape[1]):
            s += math.exp(x[o, d, j] - m)
        shift = m + math.log(s)
        for d in range(x.shape[1]):
            y[o, d, j] = x[o, d, j] - shift


@_jit
def _backward_strided(y, dy, dx, acc, o):
    for j in range(y.shape[2]):
        s = 0.0
        for d in range(y.shape[1]):
            s += dy[o, d, j]
        if acc:
            for d in range(y.shape[1]):
                dx[o, d, j] += dy[o, d, j] - math.exp(y[o, d, j]) * s
        else:
            for d in range(y.shape[1]):
                dx[o, d, j] = dy[o, d, j] - math.exp(y[o, d, j]) * s


# This op's own copy of the row dispatch: numba's disk cache cannot cache one shared loop that
# takes the row kernels as arguments (see _pointwise).
@_jit
def forward_cpu(x, y, x2, y2):  # x, y [outer, size, inner]; x2, y2 the same as [outer, size·inner]
    for o in range(x.shape[0]):
        if x.shape[2] == 1:
            _forward_row(x2[o], y2[o])
        else:
            _forward_strided(x, y, o)


@_jit
def backward_cpu(y, dy, dx, acc, y2, dy2, dx2):
    for o in range(y.shape[0]):
        if y.shape[2] == 1:
            _backward_row(y2[o], dy2[o], dx2[o], acc)
        else:
            _backward_strided(y, dy, dx, acc, o)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows(b, forward_cpu, backward_cpu)


@cuda.jit
def forward_cuda(x, y):  # x, y [outer, size, inner]: block per row (o, j), a block-stride loop
    buf = cuda.shared.array(THREADS, np.float64)
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    size, inner = x.shape[1], x.shape[2]
    for r in range(cuda.blockIdx.x, x.shape[0] * inner, cuda.gridDim.x):
        o, j = r // inner, r % inner
        m = -math.inf
        for d in range(t, size, nt):
            m = max(m, x[o, d, j])
        m = cuda_core.block_max(buf, m)
        mt = x.dtype.type(m)
        s = 0.0
        for d in range(t, size, nt):
            s += math.exp(x[o, d, j] - mt)
        shift = m + math.log(cuda_core.block_sum(buf, s))  # float64, as the CPU's
        for d in range(t, size, nt):
            y[o, d, j] = x[o, d, j] - shift


@cuda.jit
def backward_cuda(y, dy, dx, acc):
    buf = cuda.shared.array(THREADS, np.float64)
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    size, inner = y.shape[1], y.shape[2]
    for r in range(cuda.blockIdx.x, y.shape[0] * inner, cuda.gridDim.x):
        o, j = r // inner, r % inner
        s = 0.0
        for d in range(t, size, nt):
            s += dy[o, d, j]
        st = y.dtype.type(cuda_core.block_sum(buf, s))
        for d in range(t, size, nt):
            g = dy[o, d, j] - math.exp(y[o, d, j]) * st
            if acc:
                dx[o, d, j] += g
            else:
                dx[o, d, j] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows_cuda(b, forward_cuda, backward_cuda)
