"""binary_cross_entropy kernels (from logits, as torch.nn.BCEWithLogitsLoss):
ℓ = max(x, 0) - x·t + log(1 + exp(-|x|)), written so no exp overflows;
dx = (σ(x) - t)·g, dt = -x·g (g = weight / count for "mean")."""

from __future__ import annotations

import math

from numba import njit

from ..binding import Binding, Thunk
from ._losses_embed_common import bind_pointwise_loss, pointwise_backward, pointwise_forward


def loss(x, t):  # noqa: ANN001, ANN201 — scalar functions shared with the CUDA backend
    return max(x, 0.0) - x * t + math.log1p(math.exp(-abs(x)))


def grad_x(x, t):  # noqa: ANN001, ANN201
    # σ(x) from exp(-|x|) ≤ 1: no overflow for either sign
    e = math.exp(-abs(x))
    s = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)
    return s - t


def grad_t(x, t):  # noqa: ANN001, ANN201
    return -x


_loss, _grad_x, _grad_t = (njit(cache=True)(f) for f in (loss, grad_x, grad_t))


@njit(cache=True)
def forward_cpu(x, t, y, scale):
    pointwise_forward(_loss, x, t, y, scale)


@njit(cache=True)
def backward_cpu(x, t, dx, dt, g, acc_x, acc_t):
    pointwise_backward(_grad_x, _grad_t, x, t, dx, dt, g, acc_x, acc_t)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pointwise_loss(b, forward_cpu, backward_cpu)
