"""silu kernels: y = x · σ(x); dx = dy · σ(x) · (1 + x · (1 - σ(x))) (backward reads the input).

σ is sigmoid's own: in float32 ``sigmoid.sigmoid32`` (``exp32``, float32 arithmetic, branch-free,
so the loops vectorize), in float64 the overflow-free form on ``fast_exp``; ``by_dtype`` picks one
when a loop compiles. Large arrays run in contiguous chunks on numba's threads
(``_pointwise.bind_unary``).

On the GPU the float64 scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary, by_dtype, device_functions, fast_exp
from .sigmoid import sigmoid32

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp
_ONE = np.float32(1.0)  # exact in either dtype: keeps float32 arithmetic float32


def silu(x):  # scalar functions are shared with the CUDA backend
    e = exp(-abs(x))  # in (0, 1]: σ never overflows
    r = 1.0 / (1.0 + e)
    return x * (r if x >= 0.0 else e * r)


def silu_grad(x, dy):
    e = exp(-abs(x))
    r = 1.0 / (1.0 + e)
    s = r if x >= 0.0 else e * r
    return dy * s * (1.0 + x * (1.0 - s))


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")


@_scalar
def silu32(x):
    return x * sigmoid32(x)


@_scalar
def silu_grad32(x, dy):
    s = sigmoid32(x)
    return dy * s * (_ONE + x * (_ONE - s))


_f = by_dtype(silu32, _scalar(silu))
# float64 not inlined: inlining it through by_dtype trips a numba pedantic-check warning
_g = by_dtype(silu_grad32, _jit(silu_grad))


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i])


@_jit
def backward_cpu(x, dy, dx, acc, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i])


@_par
def forward_par(x, y, nt):
    for t in prange(nt):
        forward_cpu(x, y, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False)


_f_cuda, _g_cuda = device_functions(silu, silu_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False)
