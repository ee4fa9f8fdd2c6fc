"""elu kernels: y = x if x > 0 else alpha · (exp(x) - 1); dx = dy or dy · alpha · exp(x).

Backward reads the input. exp is ``fast_exp``, so the loops vectorize; exp(x) - 1 is
replaced by its Taylor polynomial for |x| < 0.02, where the subtraction would cancel.

On the GPU the same scalar functions run as device functions, with exp = math.exp
(``_pointwise.device_functions``), in grid-stride kernels; alpha is passed in the
arrays' dtype.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import bind_unary, device_functions, fast_exp

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
# inline="always": inlined before LLVM sees the loop, which then vectorizes (LLVM alone does not
# inline bodies this large)
_scalar = njit(cache=True, error_model="numpy", inline="always")
_f = _scalar(elu)
_g = _scalar(elu_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, alpha):
    for i in range(x.size):
        y[i] = _f(x[i], alpha)


@_jit
def backward_cpu(x, dy, dx, acc, alpha):
    if acc:
        for i in range(dx.size):
            dx[i] += _g(x[i], dy[i], alpha)
    else:
        for i in range(dx.size):
            dx[i] = _g(x[i], dy[i], alpha)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, False, float(b.attrs["alpha"]))


_f_cuda, _g_cuda = device_functions(elu, elu_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=True)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    # the attribute in the arrays' dtype keeps float32 products float32
    alpha = b.x[0].dtype.type(b.attrs["alpha"])
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, alpha)
