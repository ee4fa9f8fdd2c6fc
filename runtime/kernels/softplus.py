"""softplus kernels: y = x where z = beta · x > threshold, else (max(z, 0) + log1p(exp(-|z|))) / beta;
dx = dy where z > threshold, else dy · σ(z) (backward reads the input). beta and threshold are
passed in the arrays' dtype, so z and the threshold test are torch's.

The overflow-free form equals torch's log1p(exp(z)) / beta wherever that is finite. float32 data
runs in float32 arithmetic, branch-free, so the loops vectorize (``by_dtype``): e = ``exp32``(-|z|)
and log1p(e) = 2·atanh(s), s = e / (2 + e) <= 1/3, by its odd series to s¹⁵ (``log1p01_32``:
truncation below 2e-8 relative, no cancellation as e -> 0), σ from ``sigmoid.sigmoid32``. y stays
within 3.5 float32 ulp of the float64 function, the e^z tail included (torch's float32: 1.4; the
roundings of exp32, s and the series add up), dy/dx within 2.2 (tests/runtime/test_kernels_elementwise.py).
Before, float32 ran the float64 code below with libm's log1p: 24 ns per element forward, against
relu's 0.3. float64 (the gradient checks) keeps libm's log1p and ``fast_exp``. Large arrays run in
contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the float64 scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, exp32, fast_exp, fmuladd, select
from .sigmoid import sigmoid32

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp


def softplus(x, beta, threshold):  # scalar functions are shared with the CUDA backend
    z = x * beta
    if z > threshold:
        return x
    return ((z if z > 0.0 else 0.0) + math.log1p(exp(-abs(z)))) / beta


def softplus_grad(x, dy, beta, threshold):
    z = x * beta
    if z > threshold:
        return dy
    e = exp(-abs(z))  # σ(z) without overflow
    r = 1.0 / (1.0 + e)
    return dy * (r if z >= 0.0 else e * r)


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes
_scalar = njit(cache=True, error_model="numpy", inline="always")

# float32 constants: a Python float would make float32 arithmetic float64
_ZERO, _TWO = np.float32(0.0), np.float32(2.0)
_ODD = tuple(np.float32(1.0 / (2 * k + 1)) for k in range(8))  # 1, 1/3, ..., 1/15


@_scalar
def log1p01_32(e):
    """log(1 + e) of a float32 e in [0, 1] in float32: 2·atanh(s), s = e / (2 + e) <= 1/3, as
    2s·(1 + s²/3 + ... + s¹⁴/15) (the next term is below 2e-8 of the sum)."""
    s = e / (_TWO + e)
    t = s * s
    c = _ODD
    p = fmuladd(fmuladd(fmuladd(c[7], t, c[6]), t, c[5]), t, c[4])
    p = fmuladd(fmuladd(fmuladd(fmuladd(p, t, c[3]), t, c[2]), t, c[1]), t, c[0])
    return _TWO * s * p


@_scalar
def softplus32(x, beta, threshold):
    z = x * beta
    y = (select(z > _ZERO, z, _ZERO) + log1p01_32(exp32(-abs(z)))) / beta
    return select(z > threshold, x, y)


@_scalar
def softplus_grad32(x, dy, beta, threshold):
    z = x * beta
    return select(z > threshold, dy, dy * sigmoid32(z))


_f = by_dtype(softplus32, _scalar(softplus))
# float64 not inlined: inlining it through by_dtype trips a numba pedantic-check warning
_g = by_dtype(softplus_grad32, _jit(softplus_grad))


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, beta, threshold, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i], beta, threshold)


@_jit
def backward_cpu(x, dy, dx, acc, beta, threshold, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i], beta, threshold)
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i], beta, threshold)


@_par
def forward_par(x, y, beta, threshold, nt):
    for t in prange(nt):
        forward_cpu(x, y, beta, threshold, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, beta, threshold, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, beta, threshold, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def constants(b: Binding) -> tuple:
    """(beta, threshold) in the arrays' dtype."""
    dt = b.x[0].dtype.type
    return dt(b.attrs["beta"]), dt(b.attrs["threshold"])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False, *constants(b))


_f_cuda, _g_cuda = device_functions(softplus, softplus_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=2)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, *constants(b))
