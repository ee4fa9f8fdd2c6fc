"""select kernels: y = x[..., index, ...] along a per-sample axis (removed).

x is viewed as [outer, size, inner] around the axis and y as [outer, inner]. Backward writes
dy into the selected slice and zeros elsewhere (with acc, adds into the slice only).
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import around_axis


@njit(cache=True)
def forward_cpu(x, y, index):  # x [outer, size, inner], y [outer, inner]
    for o in range(x.shape[0]):
        for j in range(x.shape[2]):
            y[o, j] = x[o, index, j]


@njit(cache=True)
def backward_cpu(dy, dx, acc, index):
    for o in range(dx.shape[0]):
        if acc:
            for j in range(dx.shape[2]):
                dx[o, index, j] += dy[o, j]
        else:
            for d in range(dx.shape[1]):
                if d == index:
                    for j in range(dx.shape[2]):
                        dx[o, d, j] = dy[o, j]
                else:
                    for j in range(dx.shape[2]):
                        dx[o, d, j] = 0.0


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    axis = b.attrs["axis"] % (x.ndim - 1)
    outer, size, inner = around_axis(x, axis)
    index = b.attrs["index"] % size
    x3, y2 = x.reshape(outer, size, inner), b.y.reshape(outer, inner)
    fwd = lambda: forward_cpu(x3, y2, index)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy2, dx3, acc = b.dy.reshape(outer, inner), b.dx[0].reshape(outer, size, inner), b.acc[0]
    return fwd, lambda: backward_cpu(dy2, dx3, acc, index)
