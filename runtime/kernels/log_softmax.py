"""log_softmax kernels along a per-sample axis: y = x - max - log Σ exp(x - max).

Same [outer, size, inner] row layout and parallel twins as softmax.
Backward: dx = dy - exp(y) · Σ dy, reading the output only.
"""

from __future__ import annotations

import math

from numba import njit, prange

from ..binding import Binding, Thunk
from ._elementwise_common import bind_rows


@njit(cache=True)
def _forward_slice(x, y, o):
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


@njit(cache=True)
def _backward_slice(y, dy, dx, acc, o):
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


@njit(cache=True)
def forward_cpu(x, y):  # x, y [outer, size, inner]
    for o in range(x.shape[0]):
        _forward_slice(x, y, o)


@njit(cache=True)
def backward_cpu(y, dy, dx, acc):
    for o in range(y.shape[0]):
        _backward_slice(y, dy, dx, acc, o)


@njit(cache=True, parallel=True)
def forward_cpu_parallel(x, y):
    for o in prange(x.shape[0]):
        _forward_slice(x, y, o)


@njit(cache=True, parallel=True)
def backward_cpu_parallel(y, dy, dx, acc):
    for o in prange(y.shape[0]):
        _backward_slice(y, dy, dx, acc, o)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_rows(b, (forward_cpu, forward_cpu_parallel), (backward_cpu, backward_cpu_parallel))
