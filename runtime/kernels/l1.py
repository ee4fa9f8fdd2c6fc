"""l1 kernels: L = reduce(|x - t|); dx = sign(x - t)·g (0 where equal, as PyTorch), dt = -dx.

On the GPU the same scalar functions run in ``forward_cuda`` (per-block float64 sums through
``cuda_core.block_sum``, then ``cuda_core.device_sum`` when there is more than one block: deterministic, no
atomics) and the elementwise ``backward_cuda`` (``_losses``).
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from ._losses import bind_pointwise_loss, bind_pointwise_loss_cuda, pointwise_loss_kernels


# Scalar math, plain Python so the CUDA backend can compile it with cuda.jit(device=True).
def loss(x, t):
    return abs(x - t)


def grad_x(x, t):
    # not (x > t) - (x < t): NumPy refuses to subtract booleans, and the CUDA simulator runs NumPy
    return 1 if x > t else (-1 if x < t else 0)


def grad_t(x, t):
    return 1 if t > x else (-1 if t < x else 0)


_loss, _grad_x, _grad_t = (njit(cache=True)(f) for f in (loss, grad_x, grad_t))


# This loss's own copy of the pointwise-loss loops: numba's disk cache cannot cache one shared
# loop that takes the scalar functions as arguments (see _losses).
@njit(cache=True)
def forward_cpu(x, t, y, scale):
    s = 0.0  # float64 sum for any array dtype
    for i in range(x.size):
        s += _loss(x[i], t[i])
    y[0] = s * scale


@njit(cache=True)
def backward_cpu(x, t, dx, dt, g, acc_x, acc_t):
    # an empty dx or dt is not needed: its loop runs zero times
    for i in range(dx.size):
        v = g * _grad_x(x[i], t[i])
        dx[i] = dx[i] + v if acc_x else v
    for i in range(dt.size):
        v = g * _grad_t(x[i], t[i])
        dt[i] = dt[i] + v if acc_t else v


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss(b, forward_cpu, backward_cpu)


forward_cuda, backward_cuda = pointwise_loss_kernels(loss, grad_x, grad_t, __name__)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss_cuda(b, forward_cuda, backward_cuda)
