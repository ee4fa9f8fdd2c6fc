"""leaky_relu kernels: y = x if x > 0 else slope · x; dx = dy or slope · dy (backward reads the input).

Large arrays run in contiguous chunks on numba's threads (``_pointwise.bind_unary``); the slope
is passed in the arrays' dtype (a float64 slope would make float32 products float64).

On the GPU the same scalar functions run as device functions in grid-stride kernels, the slope
in the arrays' dtype (float32 products stay float32)."""

from __future__ import annotations

from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from . import cuda_core
from ._pointwise import ACTIVATIONS, bind_unary


def leaky_relu(x, slope):  # scalar functions are shared with the CUDA backend
    return x if x > 0.0 else x * slope


def leaky_relu_grad(x, dy, slope):
    return dy if x > 0.0 else dy * slope


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(leaky_relu)
_g = njit(cache=True, inline="always")(leaky_relu_grad)


# This op's own copy of the unary loops: numba's disk cache cannot cache one shared loop that
# takes the scalar function as an argument (see _pointwise).
@njit(cache=True)
def forward_cpu(x, y, slope, lo, hi):
    for i in range(uint64(lo), uint64(hi)):
        y[i] = _f(x[i], slope)


@njit(cache=True)
def backward_cpu(x, dy, dx, acc, slope, lo, hi):
    if acc:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] += _g(x[i], dy[i], slope)
    else:
        for i in range(uint64(lo), uint64(hi)):
            dx[i] = _g(x[i], dy[i], slope)


@njit(cache=True, parallel=True)
def forward_par(x, y, slope, nt):
    for t in prange(nt):
        forward_cpu(x, y, slope, t * x.size // nt, (t + 1) * x.size // nt)


@njit(cache=True, parallel=True)
def backward_par(x, dy, dx, acc, slope, nt):
    for t in prange(nt):
        backward_cpu(x, dy, dx, acc, slope, t * dx.size // nt, (t + 1) * dx.size // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


#: As a fused chain's head (inference) the executor binds it to ``_epilogue.bind_head``.
EPILOGUES_CPU: frozenset[str] = ACTIVATIONS


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    slope = b.x[0].dtype.type(b.attrs["negative_slope"])
    return bind_unary(b, KERNELS_CPU, False, slope)


_f_cuda = cuda.jit(device=True)(leaky_relu)
_g_cuda = cuda.jit(device=True)(leaky_relu_grad)


forward_cuda, backward_cuda = cuda_core.unary_kernels(_f_cuda, _g_cuda, __name__, attr=True)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    # the attribute in the arrays' dtype keeps float32 products float32
    slope = b.x[0].dtype.type(b.attrs["negative_slope"])
    return cuda_core.bind_unary(b, forward_cuda, backward_cuda, False, slope)
