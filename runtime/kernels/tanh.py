"""tanh kernels: y = tanh(x); dx = dy · (1 - y²) (reads the output).

tanh is computed as (1 - e) / (1 + e) with e = exp(-2|x|), exp being ``fast_exp``, so the
loop vectorizes (libm's tanh is a call, about 15 ns here). It stays within a few float64
ulps everywhere: a Taylor polynomial covers |x| < 0.02, where 1 - e would cancel.

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import bind_unary, device_functions, fast_exp

exp = fast_exp  # the CUDA backend compiles the scalar functions with exp = math.exp


def tanh(x):  # scalar functions are shared with the CUDA backend
    a = abs(x)
    if a < 0.02:  # Taylor to x⁷: truncation below 1e-15 relative here
        x2 = x * x
        return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))))
    e = exp(-2.0 * a)
    r = (1.0 - e) / (1.0 + e)
    return r if x >= 0.0 else -r


def tanh_grad(y, dy):
    return dy * (1.0 - y * y)


_jit = njit(cache=True, error_model="numpy")
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")
_f = _scalar(tanh)
_g = _scalar(tanh_grad)


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


_f_cuda, _g_cuda = device_functions(tanh, tanh_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, True)
