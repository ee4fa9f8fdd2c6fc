"""gelu kernels, as torch.nn.GELU: y = x · Φ(x); backward reads the input.

approximate "none": Φ(x) = (1 + erf(x/√2)) / 2, dy/dx = Φ(x) + x · φ(x).
approximate "tanh": y = x/2 · (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³), computed as
x · σ(2u) (the same function: (1 + tanh u)/2 = σ(2u)), so one exp and no tanh;
dy/dx = s + 2 x s (1 - s) u' with s = σ(2u).

Float32 arrays run in float32 arithmetic (16 lanes, no conversions, no libm call, so the loops
vectorize), through ``by_dtype``: the tanh form on ``exp32``; the exact form takes Φ from erfc,
Φ(-|x|) = erfc(|x|/√2)/2 = e^(-x²/2) · t·P(t)/2 with t = 1/(1 + |x|/(2√2)) (``cdf32``, a fitted
erfcx; ``gauss32`` keeps the exponent's rounding error), so the negative tail is as accurate as
the middle: y within 6 ulp of x·Φ(x) everywhere (1 + erf(x/√2) in float32, as torch computes it,
keeps only erf's rounding error below x ≈ -3). The backward shares e^(-x²/2) with Φ. Before this,
float32 ran a rational erf in float64 arithmetic (8 lanes and conversions): the forward and
backward now take about 0.9x and 0.4x its time. float64 (the gradient checks) keeps libm's erf
and ``fast_exp``.
Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the scalar functions run as device functions with exp = math.exp, and the exact
form uses the device's erf (libdevice) in both dtypes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, exp32, fast_exp, fmuladd, select

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp

ERF, TANH = 0, 1  # forms: exact (erf), tanh formula

_SQRT1_2 = 0.7071067811865476  # 1/√2
_INV_SQRT_2PI = 0.3989422804014327  # 1/√(2π)
_K = 0.7978845608028654  # √(2/π)
_C = 0.044715


def gelu_erf(x):  # scalar functions are shared with the CUDA backend
    return 0.5 * x * (1.0 + math.erf(x * _SQRT1_2))


def gelu_erf_grad(x, dy):
    cdf = 0.5 * (1.0 + math.erf(x * _SQRT1_2))
    return dy * (cdf + x * _INV_SQRT_2PI * exp(-0.5 * x * x))


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

# float32 constants: a Python float would make float32 arithmetic float64
_F = np.float32
_ZERO, _ONE = _F(0.0), _F(1.0)
_K2, _C32, _C3 = _F(2.0 * _K), _F(_C), _F(3.0 * _C)


# The exact form in float32 arithmetic (16 lanes): Φ from erfc, never 1 + erf(x/√2), whose
# cancellation below x ≈ -3 would leave only erf's rounding error (torch's float32 has it).
# erfc(a) = e^(-a²) · t·P(t), t = 1/(1 + a/2): P's 11 coefficients are a weighted least-squares
# (Lawson) fit of erfcx on [0, 9.4], relative error 3e-9; beyond 9.4 e^(-a²) flushes to 0.
_ERFC_P = tuple(
    _F(c)
    for c in (
        0.28208622336387634, 0.2823050916194916, 0.24465864896774292, 0.18851758539676666,
        0.044527456164360046, 0.05961941182613373, -0.05994591489434242, -0.2500354051589966,
        0.35518842935562134, -0.18100818991661072, 0.0340866781771183,
    )
)  # fmt: skip
_HALF32, _SQRT1_2_32, _INV_SQRT_2PI_32, _XX_MAX = _F(0.5), _F(_SQRT1_2), _F(_INV_SQRT_2PI), _F(200.0)


@_scalar
def gauss32(x):
    """e^(-x²/2) of a float32 in float32, within ~2 ulp: x·x rounds, and fmuladd recovers that
    rounding exactly, so the exponent loses no bits as |x| grows (at x = -8 a rounded x² would
    cost 40 ulp)."""
    xx = x * x
    e = exp32(-_HALF32 * xx) * (_ONE - _HALF32 * fmuladd(x, x, -xx))  # e^(-h)(1 - δ) = e^(-h - δ)
    return select(xx < _XX_MAX, e, _ZERO)  # 0, not inf·0, at |x| = inf


@_scalar
def cdf32(x, a, e):
    """Φ(x) from a = |x|/√2 and e = gauss32(x), within ~4 ulp, branch-free; relative everywhere:
    the negative tail is as accurate as the middle."""
    t = _ONE / fmuladd(_HALF32, a, _ONE)
    # Horner written out: a loop here trips numba's SSA check once inlined through by_dtype
    c = _ERFC_P
    p = fmuladd(fmuladd(fmuladd(c[10], t, c[9]), t, c[8]), t, c[7])
    p = fmuladd(fmuladd(fmuladd(p, t, c[6]), t, c[5]), t, c[4])
    p = fmuladd(fmuladd(fmuladd(fmuladd(p, t, c[3]), t, c[2]), t, c[1]), t, c[0])
    half_erfc = _HALF32 * (e * (p * t))  # Φ(-|x|)
    return select(x < _ZERO, half_erfc, _ONE - half_erfc)


@_scalar
def gelu_erf32(x):
    a = abs(x) * _SQRT1_2_32
    return x * cdf32(x, a, gauss32(x))


@_scalar
def gelu_erf_grad32(x, dy):
    a = abs(x) * _SQRT1_2_32
    e = gauss32(x)
    return dy * fmuladd(x * e, _INV_SQRT_2PI_32, cdf32(x, a, e))


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


_f_erf = by_dtype(gelu_erf32, _scalar(gelu_erf))
_f_tanh = by_dtype(gelu_tanh32, _scalar(gelu_tanh))
# float64 not inlined: inlining it through by_dtype trips a numba pedantic-check warning
_g_erf = by_dtype(gelu_erf_grad32, _jit(gelu_erf_grad))
_g_tanh = by_dtype(gelu_tanh_grad32, _jit(gelu_tanh_grad))


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, form, lo, hi):
    if form == TANH:
        for i in range(uint64(lo), uint64(hi)):
            y[i] = _f_tanh(x[i])
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


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    form = TANH if b.attrs["approximate"] == "tanh" else ERF
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
