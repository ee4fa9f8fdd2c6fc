"""log_softmax kernels along a per-sample axis: y = x - max - log Σ exp(x - max).

Same [outer, size, inner] row layout and parallel loop as softmax.
Backward: dx = dy - exp(y) · Σ dy, reading the output only.
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
                s += math.exp(x[o, d, j] - m)
            shift = m + math.log(s)
            for d in range(size):
                y[o, d, j] = x[o, d, j] - shift


@njit(cache=True, parallel=True)
def backward_cpu(y, dy, dx, acc):
    outer, size, inner = y.shape
    for o in prange(outer):
        for j in range(inner):
            s = 0.0
            for d in range(size):
                s += dy[o, d, j]
            if acc:
                for d in range(size):
                    dx[o, d, j] += dy[o, d, j] - math.exp(y[o, d, j]) * s
            else:
                for d in range(size):
                    dx[o, d, j] = dy[o, d, j] - math.exp(y[o, d, j]) * s


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows(b, forward_cpu, backward_cpu)
