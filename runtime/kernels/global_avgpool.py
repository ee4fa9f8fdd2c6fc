"""global_avgpool kernels: y[n, c] = mean of x[n, c, ...]; backward spreads dy[n, c] / S over the
S = H·W (or any trailing) cells. Arrays are viewed as [N·C, S] at bind time."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._conv_common import view


@njit(cache=True, fastmath={"reassoc"})  # reassociation lets the float64 sum vectorize (10x)
def forward_cpu(x, y):
    # x [P, S]; y [P]
    inv = 1.0 / x.shape[1]
    for q in range(x.shape[0]):
        s = 0.0
        for p in range(x.shape[1]):
            s += x[q, p]
        y[q] = s * inv


@njit(cache=True)
def backward_cpu(dy, dx, acc_dx):
    # dy [P]; dx [P, S]
    inv = 1.0 / dx.shape[1]
    for q in range(dx.shape[0]):
        g = dy[q] * inv
        if acc_dx:
            for p in range(dx.shape[1]):
                dx[q, p] += g
        else:
            for p in range(dx.shape[1]):
                dx[q, p] = g


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    n, c = b.x[0].shape[:2]
    x = view(b.x[0], n * c, -1)
    y = view(b.y, n * c)
    fwd = lambda: forward_cpu(x, y)  # noqa: E731
    if b.dx[0] is None:
        return fwd, nothing
    dy = view(b.dy, n * c)
    dx = view(b.dx[0], *x.shape)
    acc = b.acc[0]
    return fwd, lambda: backward_cpu(dy, dx, acc)
