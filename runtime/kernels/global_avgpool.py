"""global_avgpool kernels: y[n, c] = mean of x[n, c, ...]; backward spreads dy[n, c] / S over the
S = H·W (or any trailing) cells. Arrays are viewed as [N·C, S] at bind time. Large tensors run
in contiguous chunks of planes on numba's threads (``_pointwise.threads``, chosen at bind time).

CUDA: forward is one block per plane (``cuda_core.block_sum``, float64, fixed order); backward one
thread per input cell."""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._pointwise import threads
from ._views import view
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module


@njit(cache=True, fastmath={"reassoc"})  # reassociation lets the float64 sum vectorize (10x)
def forward_cpu(x, y, lo, hi):
    # x [P, S]; y [P]; planes [lo, hi)
    inv = 1.0 / x.shape[1]
    for q in range(lo, hi):
        s = 0.0
        for p in range(x.shape[1]):
            s += x[q, p]
        y[q] = s * inv


@njit(cache=True)
def backward_cpu(dy, dx, acc_dx, lo, hi):
    # dy [P]; dx [P, S]; planes [lo, hi)
    inv = 1.0 / dx.shape[1]
    for q in range(lo, hi):
        g = dy[q] * inv
        if acc_dx:
            for p in range(dx.shape[1]):
                dx[q, p] += g
        else:
            for p in range(dx.shape[1]):
                dx[q, p] = g


@njit(cache=True, parallel=True)
def forward_par(x, y, nt):
    for t in prange(nt):
        forward_cpu(x, y, t * x.shape[0] // nt, (t + 1) * x.shape[0] // nt)


@njit(cache=True, parallel=True)
def backward_par(dy, dx, acc_dx, nt):
    for t in prange(nt):
        backward_cpu(dy, dx, acc_dx, t * dx.shape[0] // nt, (t + 1) * dx.shape[0] // nt)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    n, c = b.x[0].shape[:2]
    x = view(b.x[0], n * c, -1)
    y = view(b.y, n * c)
    p, nt = n * c, threads(x.size)
    fwd = Launch(forward_cpu, x, y, 0, p) if nt == 1 else Launch(forward_par, x, y, nt)
    if b.dx[0] is None:
        return fwd, nothing
    dy = view(b.dy, n * c)
    dx = view(b.dx[0], *x.shape)
    acc = b.acc[0]
    if nt == 1:
        return fwd, Launch(backward_cpu, dy, dx, acc, 0, p)
    return fwd, Launch(backward_par, dy, dx, acc, nt)


@cuda.jit
def forward_cuda(x, y):
    # block q: y[q] = mean of x[q, :]
    buf = cuda.shared.array(THREADS, np.float64)
    q, t = cuda.blockIdx.x, cuda.threadIdx.x
    s = 0.0
    for p in range(t, x.shape[1], cuda.blockDim.x):
        s += x[q, p]
    total = cuda_core.block_sum(buf, s)
    if t == 0:
        y[q] = total * (1.0 / x.shape[1])  # as the CPU: times the reciprocal


@cuda.jit
def backward_cuda(dy, dx, acc):
    # dx[q, p] (+)= dy[q] / S
    s = dx.shape[1]
    inv = dx.dtype.type(1.0 / s)
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = dy[e // s] * inv
        if acc:
            dx[e // s, e % s] += g
        else:
            dx[e // s, e % s] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    n, c = b.x[0].shape[:2]
    x = cuda_core.rows(b.x[0], b.x[0].size // (n * c))
    y = cuda_core.flat(b.y)
    threads = cuda_core.reduce_threads(x.shape[1])

    def fwd() -> None:
        forward_cuda[x.shape[0], threads](x, y)

    if b.dx[0] is None:
        return fwd, nothing
    dy, dx = cuda_core.flat(b.dy), cuda_core.rows(b.dx[0], x.shape[1])
    acc = bool(b.acc[0])
    launch = cuda_core.grid_1d(dx.size)

    def bwd() -> None:
        backward_cuda[launch](dy, dx, acc)

    return fwd, bwd
