"""elu kernels: y = x if x > 0 else alpha · (exp(x) - 1); dx = dy or dy · alpha · exp(x).

Backward reads the input. The loops run in parallel: without SVML each exp is a libm call
(a few ns), so two threads pay from about a thousand elements on.
"""

from __future__ import annotations

import math

from numba import njit, prange

from ..binding import Binding, Thunk
from ._elementwise_common import bind_unary


def elu(x, alpha):  # scalar functions are shared with the CUDA backend
    return x if x > 0.0 else alpha * math.expm1(x)


def elu_grad(x, dy, alpha):
    return dy if x > 0.0 else dy * alpha * math.exp(x)


_f = njit(cache=True)(elu)
_g = njit(cache=True)(elu_grad)


@njit(cache=True, parallel=True)
def forward_cpu(x, y, alpha):
    for i in prange(x.size):
        y[i] = _f(x[i], alpha)


@njit(cache=True, parallel=True)
def backward_cpu(x, dy, dx, acc, alpha):
    if acc:
        for i in prange(dx.size):
            dx[i] += _g(x[i], dy[i], alpha)
    else:
        for i in prange(dx.size):
            dx[i] = _g(x[i], dy[i], alpha)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, False, float(b.attrs["alpha"]))
