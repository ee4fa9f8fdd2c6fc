"""maxout kernels: y = the max over contiguous groups of ``pieces`` along a per-sample axis.

x is viewed as [outer, groups, pieces, inner] and y, argmax as [outer, groups, inner]. Forward
saves the winning piece (the first on ties); backward routes dy there and writes zeros to the
other pieces (with acc, adds into the winners only).

On the GPU one thread per output scans its pieces (the same comparisons, so the same winner
and NaN behaviour); backward is one thread per element of dx, or per element of dy with acc.
"""

from __future__ import annotations

from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import around_axis


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


def _shape(b: Binding) -> tuple[int, int, int, int]:
    """x as [outer, groups, pieces, inner]."""
    x = b.x[0]
    k = b.attrs["pieces"]
    outer, size, inner = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    return outer, size // k, k, inner


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    outer, groups, k, inner = _shape(b)
    x4 = b.x[0].reshape(outer, groups, k, inner)
    y3, arg3 = b.y.reshape(outer, groups, inner), b.saved["argmax"].reshape(outer, groups, inner)
    fwd = Launch(forward_cpu, x4, y3, arg3)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx4, acc = b.dy.reshape(y3.shape), b.dx[0].reshape(x4.shape), b.acc[0]
    return fwd, Launch(backward_cpu, arg3, dy3, dx4, acc)


@cuda.jit
def forward_cuda(x, y, argmax):  # x [outer, groups, pieces, inner]; y, argmax [outer, groups, inner]
    groups, pieces, inner = x.shape[1], x.shape[2], x.shape[3]
    for n in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = n % inner
        og = n // inner
        g = og % groups
        o = og // groups
        best = x[o, g, 0, j]
        arg = 0
        for q in range(1, pieces):
            v = x[o, g, q, j]
            if v > best:
                best = v
                arg = q
        y[o, g, j] = best
        argmax[o, g, j] = arg


@cuda.jit
def backward_cuda(argmax, dy, dx):
    # every element of dx: dy at the winning piece, 0 elsewhere
    groups, pieces, inner = dx.shape[1], dx.shape[2], dx.shape[3]
    for n in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        j = n % inner
        m = n // inner
        q = m % pieces
        m //= pieces
        g = m % groups
        o = m // groups
        dx[o, g, q, j] = dy[o, g, j] if argmax[o, g, j] == q else 0


@cuda.jit
def backward_acc_cuda(argmax, dy, dx):
    # one thread per output: add dy into its winning piece only (distinct addresses: no race)
    groups, inner = dy.shape[1], dy.shape[2]
    for n in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
        j = n % inner
        og = n // inner
        g = og % groups
        o = og // groups
        dx[o, g, argmax[o, g, j], j] += dy[o, g, j]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    shape = _shape(b)
    out = (shape[0], shape[1], shape[3])
    x4, y3, arg3 = b.x[0].reshape(shape), b.y.reshape(out), b.saved["argmax"].reshape(out)
    blocks, threads = cuda_core.grid_1d(y3.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](x4, y3, arg3)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx4 = b.dy.reshape(out), b.dx[0].reshape(shape)
    if b.acc[0]:

        def bwd() -> None:
            backward_acc_cuda[blocks, threads](arg3, dy3, dx4)

    else:
        dx_blocks, dx_threads = cuda_core.grid_1d(dx4.size)

        def bwd() -> None:
            backward_cuda[dx_blocks, dx_threads](arg3, dy3, dx4)

    return fwd, bwd
