"""gelu kernels, as torch.nn.GELU: y = x · Φ(x); backward reads the input.

approximate "none": Φ(x) = (1 + erf(x/√2)) / 2, dy/dx = Φ(x) + x · φ(x).
approximate "tanh": y = x/2 · (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³), computed as
x · σ(2u) (the same function: (1 + tanh u)/2 = σ(2u)), so one exp and no tanh;
dy/dx = s + 2 x s (1 - s) u' with s = σ(2u).

exp is ``fast_exp``, and float32 arrays take erf from a rational fit (``erf_rational``, error
below 1e-7), so with no libm call left the float32 loops vectorize (the exact forward runs
about 10x faster than with libm's erf here). float64 (the gradient checks) keeps libm's erf.
The tanh form runs float32 arrays in float32 arithmetic (``exp32``, 16 lanes, no conversions)
through ``by_dtype``; the rational erf stays float64 (see ``_f_erf_r``).
Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the scalar functions run as device functions with exp = math.exp, and the exact
form uses the device's erf (libdevice) in both dtypes, so float32 agrees with the CPU's
rational fit to its 1e-7 error.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import bind_unary, by_dtype, device_functions, exp32, fast_exp, select

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp

ERF, TANH, ERF_RATIONAL = 0, 1, 2  # forms: exact (libm erf), tanh formula, exact with erf_rational

_SQRT1_2 = 0.7071067811865476  # 1/√2
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)
_K = 0.7978845608028654  # √(2/π)
_C = 0.044715


def gelu_erf(x):  # scalar functions are shared with the CUDA backend
    return 0.5 * x * (1.0 + math.erf(x * _SQRT1_2))


def gelu_erf_grad(x, dy):
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    return dy * (cdf + x * _INV_SQRT_2PI * exp(-0.5 * x * x))


def erf_rational(x):
    """erf to float32 accuracy (absolute error below 1e-7): Eigen's rational minimax fit on
    [-4, 4]; beyond it erf is ±1 in float32. CPU only (the CUDA backend has a fast erf)."""
    x = 4.0 if x > 4.0 else (-4.0 if x < -4.0 else x)
    x2 = x * x
    p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
    p = x2 * p - 2.10102402082508e-06
    p = x2 * p - 5.69250639462346e-05
    p = x2 * p - 7.34990630326855e-04
    p = x2 * p - 2.95459980854025e-03
    p = x2 * p - 1.60960333262415e-02
    q = x2 * -1.45660718464996e-05 - 2.13374055278905e-04
    q = x2 * q - 1.68282697438203e-03
    q = x2 * q - 7.37332916720468e-03
    q = x2 * q - 1.42647390514189e-02
    return x * p / q


def gelu_tanh(x):
    z = 2.0 * _K * (x + _C * x * x * x)
    e = exp(-abs(z))  # σ(z) without overflow
    r = 1.0 / (1.0 + e)
    return x * (r if z >= 0.0 else e * r)


def gelu_tanh_grad(x, dy):
    z = 2.0 * _K * (x + _C * x * x * x)
    e = exp(-abs(z))
    r = 1.0 / (1.0 + e)
    s = r if z >= 0.0 else e * r
    return dy * (s + 2.0 * x * s * (1.0 - s) * _K * (1.0 + 3.0 * _C * x * x))


# error_model="numpy": no zero-division check on "/", which would keep loops from vectorizing
_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")
_f_erf = _scalar(gelu_erf)
_g_erf = _scalar(gelu_erf_grad)

# float32 constants: a Python float would make float32 arithmetic float64
_F = np.float32
_ZERO, _ONE = _F(0.0), _F(1.0)
_K2, _C32, _C3 = _F(2.0 * _K), _F(_C), _F(3.0 * _C)
_erf_r = _scalar(erf_rational)


# The rational erf stays in float64 arithmetic: in float32, 1 + erf(x) for x < -3 would keep
# only the rounding error of erf's float32 value (absolute errors up to 8e-7 in y).
@_scalar
def _f_erf_r(x):
    return 0.5 * x * (1.0 + _erf_r(x * _SQRT1_2))


@_scalar
def _g_erf_r(x, dy):
    return dy * (0.5 * (1.0 + _erf_r(x * _SQRT1_2)) + x * _INV_SQRT_2PI * exp(-0.5 * x * x))


@_scalar
def _sigma32(z):
    """σ(z) in float32, branch-free."""
    e = exp32(-abs(z))
    return select(z >= _ZERO, _ONE, e) / (_ONE + e)  # e / (1 + e) below 0: one rounding, not two


@_scalar
def gelu_tanh32(x):
    return x * _sigma32(_K2 * (x + _C32 * x * x * x))


@_scalar
def gelu_tanh_grad32(x, dy):
    z = _K2 * (x + _C32 * x * x * x)
    e = exp32(-abs(z))
    inv = _ONE / (_ONE + e)
    s = select(z >= _ZERO, _ONE, e) * inv  # σ(z)
    t = select(z >= _ZERO, e, _ONE) * inv  # 1 - σ(z), without the cancellation of 1 - s near 1
    return dy * (s + x * s * t * _K2 * (_ONE + _C3 * x * x))


_f_tanh = by_dtype(gelu_tanh32, _scalar(gelu_tanh))
# float64 not inlined: inlining it through by_dtype trips a numba pedantic-check warning
_g_tanh = by_dtype(gelu_tanh_grad32, _jit(gelu_tanh_grad))


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, form, lo, hi):
    if form == TANH:
        for i in range(uint64(lo), uint64(hi)):
            y[i] = _f_tanh(x[i])
    elif form == ERF_RATIONAL:
        for i in range(uint64(lo), uint64(hi)):
            y[i] = _f_erf_r(x[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            y[i] = _f_erf(x[i])


@_jit
def backward_cpu(x, dy, dx, acc, form, lo, hi):
    if form == TANH:
        if acc:
            for i in range(uint64(lo), uint64(hi)):
                dx[i] += _g_tanh(x[i], dy[i])
        else:
            for i in range(uint64(lo), uint64(hi)):
                dx[i] = _g_tanh(x[i], dy[i])
    elif form == ERF_RATIONAL:
        if acc:
            for i in range(uint64(lo), uint64(hi)):
                dx[i] += _g_erf_r(x[i], dy[i])
        else:
            for i in range(uint64(lo), uint64(hi)):
                dx[i] = _g_erf_r(x[i], dy[i])
    elif acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g_erf(x[i], dy[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g_erf(x[i], dy[i])


@_par
def forward_par(x, y, form, nt):
    for t in prange(nt):
        forward_cpu(x, y, form, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, form, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, form, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    exact = ERF_RATIONAL if b.x[0].dtype == np.float32 else ERF
    form = TANH if b.attrs["approximate"] == "tanh" else exact
    return bind_unary(b, KERNELS_CPU, False, form)


# The device has a fast erf (libdevice's erff/erf): both dtypes take the exact form there.
_f_erf_cuda, _g_erf_cuda, _f_tanh_cuda, _g_tanh_cuda = device_functions(
    gelu_erf, gelu_erf_grad, gelu_tanh, gelu_tanh_grad
)


@cuda.jit
def forward_cuda(x, y, form):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        if form == TANH:
            y[i] = _f_tanh_cuda(x[i])
        else:
            y[i] = _f_erf_cuda(x[i])


@cuda.jit
def backward_cuda(x, dy, dx, acc, form):
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = _g_tanh_cuda(x[i], dy[i]) if form == TANH else _g_erf_cuda(x[i], dy[i])
        if acc:
            dx[i] += g
        else:
            dx[i] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    form = TANH if b.attrs["approximate"] == "tanh" else ERF
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, form)
