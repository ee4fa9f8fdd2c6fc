"""select kernels: y = x[..., index, ...] along a per-sample axis (removed).

x is viewed as [outer, size, inner] around the axis and y as [outer, inner]. Backward writes
dy into the selected slice and zeros elsewhere (with acc, adds into the slice only).

On the GPU forward (and backward with acc) copy between y and the column band
[index·inner, (index + 1)·inner) of x viewed as [outer, size·inner] (``_copies.ColumnCopy``);
backward without acc writes every element of dx in one pass (dy in the slice, zeros elsewhere).
"""

from __future__ import annotations

from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._copies import ColumnCopy
from ._views import around_axis


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


def _layout(b: Binding) -> tuple[int, int, int, int]:
    """(outer, size, inner, index) of x around the axis, the index made non-negative."""
    x = b.x[0]
    outer, size, inner = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    return outer, size, inner, b.attrs["index"] % size


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    outer, size, inner, index = _layout(b)
    x3, y2 = x.reshape(outer, size, inner), b.y.reshape(outer, inner)
    fwd = Launch(forward_cpu, x3, y2, index)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy2, dx3, acc = b.dy.reshape(outer, inner), b.dx[0].reshape(outer, size, inner), b.acc[0]
    return fwd, Launch(backward_cpu, dy2, dx3, acc, index)


@cuda.jit
def backward_cuda(dy, dx, index):
    # dx[o, d, j] = dy[o, j] on the selected slice d == index, 0 elsewhere (dx [outer, size, inner])
    size, inner = dx.shape[1], dx.shape[2]
    for n in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        j = n % inner
        od = n // inner
        d = od % size
        o = od // size
        dx[o, d, j] = dy[o, j] if d == index else 0


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    # x as [outer, size·inner]: the selected slice is the column band [index·inner, (index+1)·inner)
    outer, size, inner, index = _layout(b)
    x2, y2 = cuda_core.rows(b.x[0], size * inner), cuda_core.rows(b.y, inner)
    fwd = ColumnCopy(x2, index * inner, y2, 0, inner, False)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy2 = cuda_core.rows(b.dy, inner)
    if b.acc[0]:
        return fwd, ColumnCopy(dy2, 0, cuda_core.rows(b.dx[0], size * inner), index * inner, inner, True)
    dx3 = b.dx[0].reshape(outer, size, inner)
    blocks, threads = cuda_core.grid_1d(dx3.size)

    def bwd() -> None:
        backward_cuda[blocks, threads](dy2, dx3, index)

    return fwd, bwd
