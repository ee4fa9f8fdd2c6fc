"""tanh kernels: y = tanh(x); dx = dy · (1 - y²) (reads the output).

float64 (the gradient checks): tanh is (1 - e) / (1 + e) with e = exp(-2|x|), exp being
``fast_exp``, so the loop vectorizes (libm's tanh is a call, about 15 ns here); a Taylor
polynomial covers |x| < 0.02, where 1 - e would cancel. Within a few float64 ulps everywhere.

float32: the same formula in float32 arithmetic (Cephes' tanhf), 16 lanes where float64 had 8 and
no conversions: e = ``exp32``(-2|x|) for |x| >= 0.625, an odd polynomial below. Within 1.5
float32 ulp (checked on every 13th float32 in [1e-6, 12]). Both branches are computed and one
selected, so the loop vectorizes. ``_f`` picks the dtype's function when its caller compiles
(``by_dtype``), so fused callers (``_epilogue``) apply exactly what ``forward_cpu`` applies.

Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the float64 scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, exp32, fast_exp, fmuladd, select

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp
_ONE = np.float32(1.0)  # exact in either dtype: keeps float32 arithmetic float32


def tanh(x):  # scalar functions are shared with the CUDA backend
    a = abs(x)
    if a < 0.02:  # Taylor to x⁷: truncation below 1e-15 relative here
        x2 = x * x
        return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))))
    e = exp(-2.0 * a)
    r = (1.0 - e) / (1.0 + e)
    return r if x >= 0.0 else -r


def tanh_grad(y, dy):
    return dy * (_ONE - y * y)


_T9, _T7, _T5 = np.float32(-5.70498872745e-3), np.float32(2.06390887954e-2), np.float32(-5.37397155531e-2)
_T3, _T1 = np.float32(1.33314422036e-1), np.float32(-3.33332819422e-1)
_SMALL, _MINUS2, _ZERO = np.float32(0.625), np.float32(-2.0), np.float32(0.0)

_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")


@_scalar
def tanh32(x):
    """tanh of a float32 in float32 arithmetic, branch-free (Cephes' tanhf coefficients)."""
    a = abs(x)
    s = x * x
    p = fmuladd(_T9, s, _T7)
    p = fmuladd(p, s, _T5)
    p = fmuladd(p, s, _T3)
    p = fmuladd(p, s, _T1)
    small = fmuladd(p * s, x, x)  # x + x³·P(x²), |x| < 0.625
    e = exp32(_MINUS2 * a)
    r = (_ONE - e) / (_ONE + e)
    return select(a < _SMALL, small, select(x >= _ZERO, r, -r))


_f = by_dtype(tanh32, _scalar(tanh))
_g = _scalar(tanh_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i])


@_jit
def backward_cpu(y, dy, dx, acc, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(y[i], dy[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(y[i], dy[i])


@_par
def forward_par(x, y, nt):
    for t in prange(nt):
        forward_cpu(x, y, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(y, dy, dx, acc, nt):
    for t in prange(nt):
        backward_cpu(y, dy, dx, acc, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, True)


_f_cuda, _g_cuda = device_functions(tanh, tanh_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
