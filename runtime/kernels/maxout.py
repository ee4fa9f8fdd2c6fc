"""maxout kernels: y = the max over contiguous groups of ``pieces`` along a per-sample axis.

x is viewed as [outer, groups, pieces, inner] and y, argmax as [outer, groups, inner]. Forward
saves the winning piece (the first on ties); backward routes dy there and writes zeros to the
other pieces (with acc, adds into the winners only).
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import around_axis


@njit(cache=True)
def forward_cpu(x, y, argmax):  # x [outer, groups, pieces, inner]
    outer, groups, pieces, inner = x.shape
    for o in range(outer):
        for g in range(groups):
            for j in range(inner):
                y[o, g, j] = x[o, g, 0, j]
                argmax[o, g, j] = 0
            for q in range(1, pieces):
                for j in range(inner):
                    v = x[o, g, q, j]
                    if v > y[o, g, j]:
                        y[o, g, j] = v
                        argmax[o, g, j] = q


@njit(cache=True)
def backward_cpu(argmax, dy, dx, acc):
    outer, groups, pieces, inner = dx.shape
    for o in range(outer):
        for g in range(groups):
            for q in range(pieces):
                if acc:
                    for j in range(inner):
                        if argmax[o, g, j] == q:
                            dx[o, g, q, j] += dy[o, g, j]
                else:
                    for j in range(inner):
                        dx[o, g, q, j] = dy[o, g, j] if argmax[o, g, j] == q else 0.0


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    k = b.attrs["pieces"]
    outer, size, inner = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    x4 = x.reshape(outer, size // k, k, inner)
    y3, arg3 = b.y.reshape(outer, size // k, inner), b.saved["argmax"].reshape(outer, size // k, inner)
    fwd = lambda: forward_cpu(x4, y3, arg3)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx4, acc = b.dy.reshape(y3.shape), b.dx[0].reshape(x4.shape), b.acc[0]
    return fwd, lambda: backward_cpu(arg3, dy3, dx4, acc)
