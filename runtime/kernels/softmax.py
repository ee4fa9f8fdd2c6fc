"""softmax kernels along a per-sample axis, numerically stable (the row max is subtracted).

Arrays are viewed as [outer, size, inner] around the axis; each (outer, inner) pair is one
row of ``size`` values with stride ``inner``. The usual case, the last axis (inner = 1), runs
on contiguous rows of the [outer, size] view, where the exp pass (``fast_exp``), the sum and
the scaling all vectorize; sums use reassociated (vectorized) float64 adds, deterministic
for a given machine. Other axes loop with stride ``inner`` and libm's exp (faster than
``fast_exp`` where nothing vectorizes). Backward: dx = y ⊙ (dy - Σ dy ⊙ y), reading the output only.

On the GPU one block normalises each (outer, inner) row (``_softmax.bind_rows_cuda``):
``cuda_core.block_max`` then ``cuda_core.block_sum`` of the exponentials (float64, fixed tree order),
each thread rescaling the elements it wrote; backward is one ``block_sum`` of dy ⊙ y per row.
Exponentials run in the arrays' dtype (the max is cast back first).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import fast_exp
from ._softmax import bind_rows, bind_rows_cuda, row_dot, row_max, row_sum
from .cuda_core import THREADS  # a shared array's shape must be an int global of this module

_jit = njit(cache=True, error_model="numpy")


@_jit
def _forward_row(x, y):
    m = row_max(x)
    for d in range(x.size):
        y[d] = fast_exp(x[d] - m)
    r = 1.0 / row_sum(y)
    for d in range(y.size):
        y[d] *= r


@_jit
def _backward_row(y, dy, dx, acc):
    s = row_dot(dy, y)
    if acc:
        for d in range(y.size):
            dx[d] += y[d] * (dy[d] - s)
    else:
        for d in range(y.size):
            dx[d] = y[d] * (dy[d] - s)


@_jit
def _forward_strided(x, y, o):
    for j in range(x.shape[2]):
        m = x[o, 0, j]
        for d in range(1, x.shape[1]):
            m = max(m, x[o, d, j])
        s = 0.0
        for d in range(x.shape[1]):
            e = math.exp(x[o, d, j] - m)
            y[o, d, j] = e
            s += e
        r = 1.0 / s
        for d in range(x.shape[1]):
            y[o, d, j] *= r


@_jit
def _backward_strided(y, dy, dx, acc, o):
    for j in range(y.shape[2]):
        s = 0.0
        for d in range(y.shape[1]):
            s += dy[o, d, j] * y[o, d, j]
        if acc:
            for d in range(y.shape[1]):
                dx[o, d, j] += y[o, d, j] * (dy[o, d, j] - s)
        else:
            for d in range(y.shape[1]):
                dx[o, d, j] = y[o, d, j] * (dy[o, d, j] - s)


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
        mt = x.dtype.type(cuda_core.block_max(buf, m))
        s = 0.0
        for d in range(t, size, nt):
            e = math.exp(x[o, d, j] - mt)
            y[o, d, j] = e
            s += y[o, d, j]  # the stored (rounded) value, as the CPU sums
        inv = y.dtype.type(1.0 / cuda_core.block_sum(buf, s))
        for d in range(t, size, nt):  # the elements this thread wrote: no barrier needed
            y[o, d, j] *= inv


@cuda.jit
def backward_cuda(y, dy, dx, acc):
    buf = cuda.shared.array(THREADS, np.float64)
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    size, inner = y.shape[1], y.shape[2]
    for r in range(cuda.blockIdx.x, y.shape[0] * inner, cuda.gridDim.x):
        o, j = r // inner, r % inner
        s = 0.0
        for d in range(t, size, nt):
            s += dy[o, d, j] * y[o, d, j]
        st = y.dtype.type(cuda_core.block_sum(buf, s))
        for d in range(t, size, nt):
            g = y[o, d, j] * (dy[o, d, j] - st)
            if acc:
                dx[o, d, j] += g
            else:
                dx[o, d, j] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows_cuda(b, forward_cuda, backward_cuda)
