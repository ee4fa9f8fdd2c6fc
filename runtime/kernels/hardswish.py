"""hardswish kernels: y = x · min(max(x + 3, 0), 6) / 6, as torch computes it; dx = 0 for x <= -3,
dy · (x/3 + 1/2) for -3 < x < 3, dy for x >= 3 (backward reads the input; torch's branches, so its
values at the kinks). NaN passes through forward and lets dy through backward, as in torch.

The constants are float32 (exact in either dtype), so float32 data stays in float32 arithmetic and
the loops vectorize. Large arrays run in contiguous chunks on numba's threads
(``_pointwise.bind_unary``). On the GPU the same scalar functions run as device functions in
grid-stride kernels.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary

_ZERO, _HALF, _THREE, _SIX = np.float32(0.0), np.float32(0.5), np.float32(3.0), np.float32(6.0)


def hardswish(x):  # scalar functions are shared with the CUDA backend
    t = x + _THREE
    return x * (_ZERO if t <= _ZERO else (_SIX if t >= _SIX else t)) / _SIX


def hardswish_grad(x, dy):
    return _ZERO if x <= -_THREE else (dy * (x / _THREE + _HALF) if x < _THREE else dy)


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(hardswish)
_g = njit(cache=True, inline="always")(hardswish_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@njit(cache=True)
def forward_cpu(x, y, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i])


@njit(cache=True)
def backward_cpu(x, dy, dx, acc, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i])
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i])


@njit(cache=True, parallel=True)
def forward_par(x, y, nt):
    for t in prange(nt):
        forward_cpu(x, y, t * x.size // nt, (t + 1) * x.size // nt)


@njit(cache=True, parallel=True)
def backward_par(x, dy, dx, acc, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False)


_f_cuda = cuda.jit(device=True)(hardswish)
_g_cuda = cuda.jit(device=True)(hardswish_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False)
