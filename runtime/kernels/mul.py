"""mul kernels: y = x0 ⊙ x1 (flat, one shape); dx0 = dy ⊙ x1, dx1 = dy ⊙ x0 (or += each)."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import flat, or_empty


@njit(cache=True)
def forward_cpu(x0, x1, y):
    for i in range(y.size):
        y[i] = x0[i] * x1[i]


@njit(cache=True)
def _grad(dy, other, dx, acc):
    if acc:
        for i in range(dx.size):
            dx[i] += dy[i] * other[i]
    else:
        for i in range(dx.size):
            dx[i] = dy[i] * other[i]


@njit(cache=True)
def backward_cpu(x0, x1, dy, dx0, dx1, acc0, acc1):  # an empty dx is not needed
    # x0 and x1 may be one buffer (x * x); dx0 and dx1 then are too, with acc1 set.
    _grad(dy, x1, dx0, acc0)
    _grad(dy, x0, dx1, acc1)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x0, x1, y = flat(b.x[0]), flat(b.x[1]), flat(b.y)
    fwd = lambda: forward_cpu(x0, x1, y)  # noqa: E731
    if b.dy is None or (b.dx[0] is None and b.dx[1] is None):
        return fwd, nothing
    dy = flat(b.dy)
    dx0, dx1 = flat(or_empty(b.dx[0], y)), flat(or_empty(b.dx[1], y))
    acc0, acc1 = b.acc[0], b.acc[1]
    return fwd, lambda: backward_cpu(x0, x1, dy, dx0, dx1, acc0, acc1)
