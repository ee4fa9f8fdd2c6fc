"""sigmoid kernels: y = 1 / (1 + exp(-x)) without overflow; dx = dy · y · (1 - y) (reads the output).

exp is ``fast_exp`` (vectorizes; libm's exp does not), and error_model="numpy" drops the
zero-division check that would keep the loop scalar.

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import bind_unary, device_functions, fast_exp

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp


def sigmoid(x):  # scalar functions are shared with the CUDA backend
    e = exp(-abs(x))  # in (0, 1]: never overflows
    r = 1.0 / (1.0 + e)
    return r if x >= 0.0 else e * r


def sigmoid_grad(y, dy):
    return dy * y * (1.0 - y)


_jit = njit(cache=True, error_model="numpy")
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")
_f = _scalar(sigmoid)
_g = _scalar(sigmoid_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y):
    for i in range(x.size):
        y[i] = _f(x[i])


@_jit
def backward_cpu(y, dy, dx, acc):
    if acc:
        for i in range(dx.size):
            dx[i] += _g(y[i], dy[i])
    else:
        for i in range(dx.size):
            dx[i] = _g(y[i], dy[i])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, True)


_f_cuda, _g_cuda = device_functions(sigmoid, sigmoid_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
