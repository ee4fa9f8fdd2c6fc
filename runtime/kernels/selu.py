"""selu kernels: y = scale · elu(x, alpha); dx = elu's gradient of (dy · scale), i.e. dy · scale or
dy · scale · alpha · exp(x) (backward reads the input). alpha and scale are PyTorch's fixed
constants (compiler/ops/selu.py), passed in the arrays' dtype.

The elu part is elu's own scalar functions (``elu._f``, ``elu._g``: float32 arithmetic on float32
data, the Taylor branch near 0), so selu is as accurate as elu and its loops vectorize alike. Large
arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``).

On the GPU the same scalar functions run as device functions calling elu's device functions
(exp = math.exp), in grid-stride kernels.
"""

from __future__ import annotations

from numba import njit, prange, uint64

from ...compiler.ops.selu import ALPHA, SCALE
from ..binding import Binding, Thunk
from . import cuda_core
from . import elu as _elu
from ._pointwise import ACTIVATIONS, bind_unary, device_function

elu, elu_grad = _elu._f, _elu._g  # the CUDA backend rebinds them to elu's device functions


def selu(x, alpha, scale):  # scalar functions are shared with the CUDA backend
    return scale * elu(x, alpha)


def selu_grad(x, dy, alpha, scale):
    return elu_grad(x, dy * scale, alpha)


_jit = njit(cache=True, error_model="numpy")
_par = njit(cache=True, error_model="numpy", parallel=True)
# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, error_model="numpy", inline="always")(selu)
_g = njit(cache=True, error_model="numpy", inline="always")(selu_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@_jit
def forward_cpu(x, y, alpha, scale, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i], alpha, scale)


@_jit
def backward_cpu(x, dy, dx, acc, alpha, scale, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i], alpha, scale)
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i], alpha, scale)


@_par
def forward_par(x, y, alpha, scale, nt):
    for t in prange(nt):
        forward_cpu(x, y, alpha, scale, t * x.size // nt, (t + 1) * x.size // nt)


@_par
def backward_par(x, dy, dx, acc, alpha, scale, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, alpha, scale, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def constants(dt: type) -> tuple:
    """(alpha, scale) in dtype ``dt``: float32 products stay float32 (``_epilogue`` passes the same)."""
    return dt(ALPHA), dt(SCALE)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, KERNELS_CPU, False, *constants(b.x[0].dtype.type))


_f_cuda = device_function(selu, elu=_elu._f_cuda)
_g_cuda = device_function(selu_grad, elu_grad=_elu._g_cuda)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=2)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, *constants(b.x[0].dtype.type))
