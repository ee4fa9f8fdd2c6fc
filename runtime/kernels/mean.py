"""mean kernels: y = the mean of x over per-sample ``axes``; dx = dy / count spread back.

At bind time x is regrouped as [k0, r0, k1, r1, k2, r2] (runs of kept and reduced axes
merged, size-1 axes dropped, right-aligned) and y as [k0, k1, k2], so one compiled loop
nest serves every rank and axis set with contiguous innermost loops. ``keepdims`` only
changes y's shape, not its memory order.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._elementwise_common import reduction_layout


@njit(cache=True)
def forward_cpu(x, y, inv_count):  # x [k0, r0, k1, r1, k2, r2], y [k0, k1, k2]
    k0, r0, k1, r1, k2, r2 = x.shape
    for a in range(k0):
        for b in range(k1):
            for c in range(k2):
                y[a, b, c] = 0.0
        for i in range(r0):
            for b in range(k1):
                for j in range(r1):
                    if r2 == 1:  # mean over middle axes: the innermost loop is over kept values
                        for c in range(k2):
                            y[a, b, c] += x[a, i, b, j, c, 0]
                    else:
                        for c in range(k2):
                            s = 0.0
                            for k in range(r2):
                                s += x[a, i, b, j, c, k]
                            y[a, b, c] += s
        for b in range(k1):
            for c in range(k2):
                y[a, b, c] *= inv_count


@njit(cache=True)
def backward_cpu(dy, dx, acc, inv_count):  # dy [k0, k1, k2], dx [k0, r0, k1, r1, k2, r2]
    k0, r0, k1, r1, k2, r2 = dx.shape
    for a in range(k0):
        for i in range(r0):
            for b in range(k1):
                for j in range(r1):
                    if r2 == 1:  # as in forward: keep the long loop innermost
                        if acc:
                            for c in range(k2):
                                dx[a, i, b, j, c, 0] += dy[a, b, c] * inv_count
                        else:
                            for c in range(k2):
                                dx[a, i, b, j, c, 0] = dy[a, b, c] * inv_count
                        continue
                    for c in range(k2):
                        g = dy[a, b, c] * inv_count
                        if acc:
                            for k in range(r2):
                                dx[a, i, b, j, c, k] += g
                        else:
                            for k in range(r2):
                                dx[a, i, b, j, c, k] = g


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    rank = x.ndim - 1
    reduced = {a % rank + 1 for a in b.attrs["axes"]}
    sizes = reduction_layout(x.shape, reduced)
    kept = (sizes[0], sizes[2], sizes[4])
    count = 1
    for a in reduced:
        count *= x.shape[a]
    inv = 1.0 / count
    x6, y3 = x.reshape(sizes), b.y.reshape(kept)
    fwd = lambda: forward_cpu(x6, y3, inv)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx6, acc = b.dy.reshape(kept), b.dx[0].reshape(sizes), b.acc[0]
    return fwd, lambda: backward_cpu(dy3, dx6, acc, inv)
