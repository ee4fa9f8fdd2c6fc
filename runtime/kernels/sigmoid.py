"""sigmoid kernels: y = 1 / (1 + exp(-x)) without overflow; dx = dy · y · (1 - y) (reads the output).

The forward loop runs in parallel (one libm exp per element); the backward is cheap and serial.
"""

from __future__ import annotations

import math

from numba import njit, prange

from ..binding import Binding, Thunk
from ._elementwise_common import bind_unary


def sigmoid(x):  # scalar functions are shared with the CUDA backend
    e = math.exp(-abs(x))  # in (0, 1]: never overflows
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


def sigmoid_grad(y, dy):
    return dy * y * (1.0 - y)


_f = njit(cache=True)(sigmoid)
_g = njit(cache=True)(sigmoid_grad)


@njit(cache=True, parallel=True)
def forward_cpu(x, y):
    for i in prange(x.size):
        y[i] = _f(x[i])


@njit(cache=True)
def backward_cpu(y, dy, dx, acc):
    if acc:
        for i in range(dx.size):
            dx[i] += _g(y[i], dy[i])
    else:
        for i in range(dx.size):
            dx[i] = _g(y[i], dy[i])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, True)
