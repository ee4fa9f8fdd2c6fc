"""elu kernels: y = x if x > 0 else alpha · (exp(x) - 1); dx = dy or dy · alpha · exp(x).

Backward reads the input. exp is ``fast_exp``, so the loops vectorize; exp(x) - 1 is
replaced by its Taylor polynomial for |x| < 0.02, where the subtraction would cancel.
float32 data runs in float32 arithmetic (``elu32``, ``by_dtype``): ``exp32`` below -ln 2, where
1 - e^x is exact, and the Taylor polynomial to x⁹ above, both computed and one selected so the
loop vectorizes. Large arrays run in contiguous chunks on numba's threads (``bind_unary``).

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels; alpha is passed in the
arrays' dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, exp32, fast_exp, fmuladd, select

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp


def elu(x, alpha):  # scalar functions are shared with the CUDA backend
    if x > 0.0:
        return x
    if x > -0.02:  # expm1 to x⁶: truncation below 1e-15 relative here
        p = 1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0))
        return alpha * x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * p)))
    return alpha * (exp(x) - 1.0)


def elu_grad(x, dy, alpha):
    return dy if x > 0.0 else dy * alpha * exp(x)


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")

_ZERO, _ONE, _MINUS_LN2 = np.float32(0.0), np.float32(1.0), np.float32(-0.6931472)
_I2, _I3, _I4, _I5, _I6, _I7, _I8, _I9 = (np.float32(1.0 / k) for k in range(2, 10))


@_scalar
def expm1_32(x):
    """e^x - 1 of a float32 x <= 0 in float32, within ~1 ulp, branch-free: above -ln 2 Taylor to
    x⁹, x (1 + x/2 (1 + x/3 (...))); below, e^x - 1 (e^x <= 1/2: the subtraction is exact)."""
    p = fmuladd(x, _I9, _ONE)
    p = fmuladd(x * _I8, p, _ONE)
    p = fmuladd(x * _I7, p, _ONE)
    p = fmuladd(x * _I6, p, _ONE)
    p = fmuladd(x * _I5, p, _ONE)
    p = fmuladd(x * _I4, p, _ONE)
    p = fmuladd(x * _I3, p, _ONE)
    p = fmuladd(x * _I2, p, _ONE)
    return select(x > _MINUS_LN2, x * p, exp32(x) - _ONE)


@_scalar
def elu32(x, alpha):
    return select(x > _ZERO, x, np.float32(alpha) * expm1_32(select(x > _ZERO, _ZERO, x)))


@_scalar
def elu_grad32(x, dy, alpha):
    return select(x > _ZERO, dy, dy * np.float32(alpha) * exp32(x))


_f = by_dtype(elu32, _scalar(elu))
# float64 not inlined: inlining it through by_dtype trips a numba pedantic-check warning
_g = by_dtype(elu_grad32, _jit(elu_grad))


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, alpha, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i], alpha)


@_jit
def backward_cpu(x, dy, dx, acc, alpha, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i], alpha)
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i], alpha)


@_par
def forward_par(x, y, alpha, nt):
    for t in prange(nt):
        forward_cpu(x, y, alpha, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, alpha, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, alpha, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False, float(b.attrs["alpha"]))


_f_cuda, _g_cuda = device_functions(elu, elu_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=True)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    # the attribute in the arrays' dtype keeps float32 products float32
    alpha = b.x[0].dtype.type(b.attrs["alpha"])
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, alpha)
