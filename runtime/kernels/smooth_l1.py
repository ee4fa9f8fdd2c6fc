"""smooth_l1 kernels: with d = x - t, ℓ = 0.5·d²/β where |d| < β, else |d| - 0.5·β (β = 0: |d|);
dx = (d/β where |d| < β, else sign(d))·g (0 where d = 0, as PyTorch's l1 at β = 0), dt = -dx.

The pointwise-loss loops of ``_losses`` with β as the scalar functions' third argument; on the GPU
the same functions run in ``forward_cuda`` and ``backward_cuda`` built by ``_losses``.
"""

from __future__ import annotations

from typing import Any

from numba import njit

from ..binding import Binding, Thunk
from ._losses import bind_pointwise_loss, bind_pointwise_loss_cuda, pointwise_loss_kernels


# Scalar math, plain Python so the CUDA backend can compile it with cuda.jit(device=True).
def loss(x, t, beta):
    d = abs(x - t)
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


def grad_x(x, t, beta):
    d = x - t
    if abs(d) < beta:
        return d / beta
    return 1 if d > 0 else (-1 if d < 0 else 0)  # sign(d), 0 at d = 0 (β = 0)


_loss, _grad_x = (njit(cache=True)(f) for f in (loss, grad_x))


# This loss's own copy of the pointwise-loss loops (see _losses), with β.
@njit(cache=True)
def forward_cpu(x, t, y, scale, beta):
    s = 0.0  # float64 sum for any array dtype
    for i in range(x.size):
        s += _loss(x[i], t[i], beta)
    y[0] = s * scale


@njit(cache=True)
def backward_cpu(x, t, dx, dt, g, acc_x, acc_t, beta):
    # an empty dx or dt is not needed: its loop runs zero times
    for i in range(dx.size):
        v = g * _grad_x(x[i], t[i], beta)
        dx[i] = dx[i] + v if acc_x else v
    for i in range(dt.size):
        v = -g * _grad_x(x[i], t[i], beta)
        dt[i] = dt[i] + v if acc_t else v


def _beta(b: Binding) -> Any:
    # β in the arrays' dtype, so float32 loops stay float32
    return b.x[0].dtype.type(b.attrs["beta"])


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss(b, forward_cpu, backward_cpu, _beta(b))


def grad_t(x, t, beta):
    # ∂ℓ/∂t = -∂ℓ/∂x, written out: a device function cannot call the plain-Python grad_x
    d = t - x
    if abs(d) < beta:
        return d / beta
    return 1 if d > 0 else (-1 if d < 0 else 0)


forward_cuda, backward_cuda = pointwise_loss_kernels(loss, grad_x, grad_t, __name__, param=True)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss_cuda(b, forward_cuda, backward_cuda, _beta(b))
