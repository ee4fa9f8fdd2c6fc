"""softmax kernels along a per-sample axis, numerically stable (the row max is subtracted).

Arrays are viewed as [outer, size, inner] around the axis; each (outer, inner) pair is one
row of ``size`` values with stride ``inner`` (1 for the last axis). Rows run in parallel over
``outer`` (one libm exp per element). Sums accumulate in float64.
Backward: dx = y ⊙ (dy - Σ dy ⊙ y), reading the output only.
"""

from __future__ import annotations

import math

from numba import njit, prange

from ..binding import Binding, Thunk
from ._elementwise_common import bind_rows


@njit(cache=True, parallel=True)
def forward_cpu(x, y):  # x, y [outer, size, inner]
    outer, size, inner = x.shape
    for o in prange(outer):
        for j in range(inner):
            m = x[o, 0, j]
            for d in range(1, size):
                m = max(m, x[o, d, j])
            s = 0.0
            for d in range(size):
                e = math.exp(x[o, d, j] - m)
                y[o, d, j] = e
                s += e
            r = 1.0 / s
            for d in range(size):
                y[o, d, j] *= r


@njit(cache=True, parallel=True)
def backward_cpu(y, dy, dx, acc):
    outer, size, inner = y.shape
    for o in prange(outer):
        for j in range(inner):
            s = 0.0
            for d in range(size):
                s += dy[o, d, j] * y[o, d, j]
            if acc:
                for d in range(size):
                    dx[o, d, j] += y[o, d, j] * (dy[o, d, j] - s)
            else:
                for d in range(size):
                    dx[o, d, j] = y[o, d, j] * (dy[o, d, j] - s)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows(b, forward_cpu, backward_cpu)
