"""sigmoid kernels: y = 1 / (1 + exp(-x)) without overflow; dx = dy · y · (1 - y) (reads the output).

exp is ``fast_exp`` in float64 (vectorizes; libm's exp does not) and ``exp32`` in float32 (float32
arithmetic, 16 lanes, within a few float32 ulp), ``_f`` choosing by dtype when its caller compiles
(``by_dtype``); error_model="numpy" drops the zero-division check that would keep the loop scalar.
Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, exp32, fast_exp, select

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp
_ONE, _ZERO = np.float32(1.0), np.float32(0.0)  # exact in either dtype: float32 stays float32


def sigmoid(x):  # scalar functions are shared with the CUDA backend
    e = exp(-abs(x))  # in (0, 1]: never overflows
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


def sigmoid_grad(y, dy):
    return dy * y * (_ONE - y)


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")


@_scalar
def sigmoid32(x):
    """sigmoid of a float32 in float32 arithmetic, branch-free."""
    e = exp32(-abs(x))
    return select(x >= _ZERO, _ONE, e) / (_ONE + e)  # e / (1 + e) below 0: one rounding, not two


_f = by_dtype(sigmoid32, _scalar(sigmoid))
_g = _scalar(sigmoid_grad)


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


_f_cuda, _g_cuda = device_functions(sigmoid, sigmoid_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
