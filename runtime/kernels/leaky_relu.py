"""leaky_relu kernels: y = x if x > 0 else slope · x; dx = dy or slope · dy (backward reads the input)."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from ._elementwise_common import bind_unary


def leaky_relu(x, slope):  # scalar functions are shared with the CUDA backend
    return x if x > 0.0 else x * slope


def leaky_relu_grad(x, dy, slope):
    return dy if x > 0.0 else dy * slope


# inline="always": inlined before LLVM sees the loop, which then vectorizes
_f = njit(cache=True, inline="always")(leaky_relu)
_g = njit(cache=True, inline="always")(leaky_relu_grad)


@njit(cache=True)
def forward_cpu(x, y, slope):
    for i in range(x.size):
        y[i] = _f(x[i], slope)


@njit(cache=True)
def backward_cpu(x, dy, dx, acc, slope):
    if acc:
        for i in range(dx.size):
            dx[i] += _g(x[i], dy[i], slope)
    else:
        for i in range(dx.size):
            dx[i] = _g(x[i], dy[i], slope)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_unary(b, forward_cpu, backward_cpu, False, float(b.attrs["negative_slope"]))
