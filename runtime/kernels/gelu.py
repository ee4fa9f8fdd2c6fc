"""gelu kernels, as torch.nn.GELU: y = x · Φ(x); backward reads the input.

approximate "none": Φ(x) = (1 + erf(x/√2)) / 2, dy/dx = Φ(x) + x · φ(x).
approximate "tanh": y = x/2 · (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³), computed as
x · σ(2u) (the same function: (1 + tanh u)/2 = σ(2u)), so one exp and no tanh;
dy/dx = s + 2 x s (1 - s) u' with s = σ(2u). Both loops run in parallel (libm erf/exp calls).
"""

from __future__ import annotations

import math

from numba import njit, prange

from ..binding import Binding, Thunk
from ._elementwise_common import bind_unary

_SQRT1_2 = 0.7071067811865476  # 1/√2
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)
_K = 0.7978845608028654  # √(2/π)
_C = 0.044715


def gelu_erf(x):  # scalar functions are shared with the CUDA backend
    return 0.5 * x * (1.0 + math.erf(x * _SQRT1_2))


def gelu_erf_grad(x, dy):
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    return dy * (cdf + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x))


def gelu_tanh(x):
    z = 2.0 * _K * (x + _C * x * x * x)
    e = math.exp(-abs(z))  # σ(z) without overflow
    r = 1.0 / (1.0 + e)
    return x * (r if z >= 0.0 else e * r)


def gelu_tanh_grad(x, dy):
    z = 2.0 * _K * (x + _C * x * x * x)
    e = math.exp(-abs(z))
    r = 1.0 / (1.0 + e)
    s = r if z >= 0.0 else e * r
    return dy * (s + 2.0 * x * s * (1.0 - s) * _K * (1.0 + 3.0 * _C * x * x))


_f_erf = njit(cache=True)(gelu_erf)
_g_erf = njit(cache=True)(gelu_erf_grad)
_f_tanh = njit(cache=True)(gelu_tanh)
_g_tanh = njit(cache=True)(gelu_tanh_grad)


@njit(cache=True, parallel=True)
def forward_cpu(x, y, tanh_form):
    if tanh_form:
        for i in prange(x.size):
            y[i] = _f_tanh(x[i])
    else:
        for i in prange(x.size):
            y[i] = _f_erf(x[i])


@njit(cache=True, parallel=True)
def backward_cpu(x, dy, dx, acc, tanh_form):
    if tanh_form:
        if acc:
            for i in prange(dx.size):
                dx[i] += _g_tanh(x[i], dy[i])
        else:
            for i in prange(dx.size):
                dx[i] = _g_tanh(x[i], dy[i])
    elif acc:
        for i in prange(dx.size):
            dx[i] += _g_erf(x[i], dy[i])
    else:
        for i in prange(dx.size):
            dx[i] = _g_erf(x[i], dy[i])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, False, b.attrs["approximate"] == "tanh")
