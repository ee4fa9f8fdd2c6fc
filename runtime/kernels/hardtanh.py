"""hardtanh kernels: y = lo if x <= lo, hi if x >= hi, else x; dx = dy strictly between the bounds,
else 0 (backward reads the output: lo < y < hi ⇔ lo < x < hi). NaN passes through forward and lets
dy through backward, as in torch.

The bounds are passed in the arrays' dtype, so the comparisons are torch's (it converts them to the
tensor's dtype too). relu6 binds these same kernels with bounds 0 and 6 (``relu6.py``): one loop,
and torch's relu6 is hardtanh(x, 0, 6). Large arrays run in contiguous chunks on numba's threads
(``_pointwise.bind_unary``).

On the GPU the same scalar functions run as device functions in grid-stride kernels.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary

_ZERO = np.float32(0.0)  # exact in either dtype: float32 stays float32


def hardtanh(x, lo, hi):  # scalar functions are shared with the CUDA backend
    return lo if x <= lo else (hi if x >= hi else x)


def hardtanh_grad(y, dy, lo, hi):
    return _ZERO if y <= lo else (_ZERO if y >= hi else dy)


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(hardtanh)
_g = njit(cache=True, inline="always")(hardtanh_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@njit(cache=True)
def forward_cpu(x, y, lo, hi, i0, i1):
    for i in range(uint64(i0), uint64(i1)):
        y[i] = _f(x[i], lo, hi)


@njit(cache=True)
def backward_cpu(y, dy, dx, acc, lo, hi, i0, i1):
    if acc:
        for i in range(uint64(i0), uint64(i1)):
            dx[i] += _g(y[i], dy[i], lo, hi)
    else:
        for i in range(uint64(i0), uint64(i1)):
            dx[i] = _g(y[i], dy[i], lo, hi)


@njit(cache=True, parallel=True)
def forward_par(x, y, lo, hi, nt):
    for t in prange(nt):
        forward_cpu(x, y, lo, hi, t * x.size // nt, (t + 1) * x.size // nt)


@njit(cache=True, parallel=True)
def backward_par(y, dy, dx, acc, lo, hi, nt):
    for t in prange(nt):
        backward_cpu(y, dy, dx, acc, lo, hi, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bounds(b: Binding) -> tuple[np.floating, np.floating]:
    """(min_val, max_val) in the arrays' dtype."""
    dt = b.x[0].dtype.type
    return dt(b.attrs["min_val"]), dt(b.attrs["max_val"])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, True, *bounds(b))


_f_cuda = cuda.jit(device=True)(hardtanh)
_g_cuda = cuda.jit(device=True)(hardtanh_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=2)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True, *bounds(b))
