"""The row-wise softmax family (softmax, log_softmax): row reductions and the binders that view
each tensor as rows along the op's ``axis``.

CPU: ``row_max``, ``row_sum``, ``row_dot`` and ``row_sum_exp`` reduce one contiguous row with
reassociated adds, so the loops vectorize; ``bind_rows`` hands the kernels each array both as
[outer, size, inner] and as [outer, size·inner]. CUDA: ``bind_rows_cuda`` runs one block per
(outer, inner) row, reducing with ``cuda_core.block_max`` / ``block_sum``. Numba's on-disk cache checks
the caller's file only: after editing a reduction, delete the callers' caches.
"""

from __future__ import annotations

from typing import Any

from numba import njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._pointwise import fast_exp
from ._views import around_axis

# -- row reductions: reassociated adds, so the loops vectorize ------------------------------------


@njit(cache=True)
def row_max(x):
    m = x[0]
    for i in range(1, x.size):
        m = max(m, x[i])
    return m


@njit(cache=True, fastmath={"reassoc"})
def row_sum(x):
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s


@njit(cache=True, fastmath={"reassoc"})
def row_dot(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def row_sum_exp(x, m):
    s = 0.0
    for i in range(x.size):
        s += fast_exp(x[i] - m)
    return s


# -- binders ----------------------------------------------------------------------------------------


def bind_rows(b: Binding, forward, backward) -> tuple[Thunk, Thunk]:
    """Bind a normalisation along ``axis``: ``forward(x, y, x2, y2)`` and
    ``backward(y, dy, dx, acc, y2, dy2, dx2)`` get each array as [outer, size, inner] and as
    [outer, size·inner] (contiguous rows when inner is 1)."""
    x = b.x[0]
    shape = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    rows = (shape[0], shape[1] * shape[2])
    x3, y3, x2, y2 = x.reshape(shape), b.y.reshape(shape), x.reshape(rows), b.y.reshape(rows)
    fwd = Launch(forward, x3, y3, x2, y2)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx3, acc = b.dy.reshape(shape), b.dx[0].reshape(shape), b.acc[0]
    dy2, dx2 = b.dy.reshape(rows), b.dx[0].reshape(rows)
    return fwd, Launch(backward, y3, dy3, dx3, acc, y2, dy2, dx2)


def bind_rows_cuda(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """Bind a normalisation along ``axis``: ``forward(x, y)`` and ``backward(y, dy, dx, acc)`` get
    [outer, size, inner] views and run one block per (outer, inner) row (a block-stride loop
    over rows past ``MAX_BLOCKS``)."""
    x = b.x[0]
    shape = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    x3, y3 = x.reshape(shape), b.y.reshape(shape)
    n_rows = shape[0] * shape[2]
    blocks, threads = max(1, min(n_rows, cuda_core.MAX_BLOCKS)), cuda_core.reduce_threads(shape[1])

    def fwd() -> None:
        forward[blocks, threads](x3, y3)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx3, acc = b.dy.reshape(shape), b.dx[0].reshape(shape), bool(b.acc[0])

    def bwd() -> None:
        backward[blocks, threads](y3, dy3, dx3, acc)

    return fwd, bwd
