"""mse kernels: L = reduce((x - t)²); dx = 2·(x - t)·g, dt = -dx (g = weight / count for "mean")."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk
from ._losses_embed_common import bind_pointwise_loss, pointwise_backward, pointwise_forward


def loss(x, t):  # noqa: ANN001, ANN201 — scalar functions shared with the CUDA backend
    d = x - t
    return d * d


def grad_x(x, t):  # noqa: ANN001, ANN201
    d = x - t
    return d + d


def grad_t(x, t):  # noqa: ANN001, ANN201
    d = t - x
    return d + d


_loss, _grad_x, _grad_t = (njit(cache=True)(f) for f in (loss, grad_x, grad_t))


@njit(cache=True)
def forward_cpu(x, t, y, scale):
    pointwise_forward(_loss, x, t, y, scale)


@njit(cache=True)
def backward_cpu(x, t, dx, dt, g, acc_x, acc_t):
    pointwise_backward(_grad_x, _grad_t, x, t, dx, dt, g, acc_x, acc_t)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss(b, forward_cpu, backward_cpu)
