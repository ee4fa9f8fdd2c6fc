"""relu kernels: y = max(x, 0); dx = dy where y > 0 (backward reads the output only)."""

from __future__ import annotations

from numba import cuda, njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import bind_unary


def relu(x):  # scalar functions are shared with the CUDA backend
    return 0.0 if x <= 0.0 else x  # NaN passes through, as in torch


def relu_grad(y, dy):
    return dy if y > 0.0 else 0.0


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(relu)
_g = njit(cache=True, inline="always")(relu_grad)
_f_cuda = cuda.jit(device=True)(relu)
_g_cuda = cuda.jit(device=True)(relu_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@njit(cache=True)
def forward_cpu(x, y):
    for i in range(x.size):
        y[i] = _f(x[i])


@njit(cache=True)
def backward_cpu(y, dy, dx, acc):
    if acc:
        for i in range(dx.size):
            dx[i] += _g(y[i], dy[i])
    else:
        for i in range(dx.size):
            dx[i] = _g(y[i], dy[i])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, True)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
