"""prelu kernels: y = x if x > 0 else w[c] · x over x viewed as [N, C, S] (C = num_parameters: 1, or
the channels of per-sample axis 0); dx = dy if x > 0 else w[c] · dy; dw[c] = Σ_{n,s} x · dy where
x <= 0 (backward reads the input). The slope gradient is summed in float64 in a fixed order and
written, not accumulated (parameter gradients are written once per backward).

CPU: serial loops, the slope hoisted per (n, c) row, so the inner loop over S vectorizes; prelu is
rare in the benchmarked networks. GPU: grid-stride kernels for y and dx; dw is one block per
channel, each thread summing a grid-stride share of (n, s) in float64 and ``cuda_core.block_sum``
adding the threads in a fixed tree: deterministic, no atomics.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import or_empty
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module


def channels(b: Binding) -> tuple[int, int, int]:
    """(N, C, S) of the input as [N, C, S]."""
    x, c = b.x[0], int(b.attrs["num_parameters"])
    return x.shape[0], c, x.size // max(1, x.shape[0] * c)


@njit(cache=True, error_model="numpy")
def forward_cpu(x, w, y):
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            a = w[c]
            for s in range(x.shape[2]):
                v = x[n, c, s]
                y[n, c, s] = v if v > 0 else a * v


@njit(cache=True, error_model="numpy")
def backward_cpu(x, w, dy, dx, acc, dw):
    if dx.size:
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                a = w[c]
                if acc:  # a branch per row, not per element: the inner loops vectorize
                    for s in range(x.shape[2]):
                        dx[n, c, s] += dy[n, c, s] if x[n, c, s] > 0 else a * dy[n, c, s]
                else:
                    for s in range(x.shape[2]):
                        dx[n, c, s] = dy[n, c, s] if x[n, c, s] > 0 else a * dy[n, c, s]
    if dw.size:
        for c in range(x.shape[1]):
            t = 0.0
            for n in range(x.shape[0]):
                for s in range(x.shape[2]):
                    v = x[n, c, s]
                    t += 0.0 if v > 0 else np.float64(v) * np.float64(dy[n, c, s])
            dw[c] = t


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    shape = channels(b)
    x, y, w = b.x[0].reshape(shape), b.y.reshape(shape), b.p["weight"]
    fwd = Launch(forward_cpu, x, w, y)
    dx = or_empty(None if b.dx[0] is None else b.dx[0].reshape(shape), w.dtype, 3)
    dw = or_empty(b.dp.get("weight"), w.dtype)
    if not dx.size and not dw.size:
        return fwd, nothing
    return fwd, Launch(backward_cpu, x, w, b.dy.reshape(shape), dx, bool(b.acc[0]), dw)


@cuda.jit
def forward_cuda(x, w, y, s_len):
    c_len = w.size
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = v if v > 0 else w[(i // s_len) % c_len] * v


@cuda.jit
def backward_dx_cuda(x, w, dy, dx, acc, s_len):
    c_len = w.size
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        g = dy[i] if x[i] > 0 else w[(i // s_len) % c_len] * dy[i]
        dx[i] = dx[i] + g if acc else g


@cuda.jit
def backward_dw_cuda(x, dy, dw, s_len):
    # block c sums channel c over every (n, s): x viewed flat as [N, C, S]
    buf = cuda.shared.array(THREADS, np.float64)
    c, c_len = cuda.blockIdx.x, dw.size
    t = 0.0
    for j in range(cuda.threadIdx.x, x.size // c_len, cuda.blockDim.x):
        i = ((j // s_len) * c_len + c) * s_len + j % s_len
        v = x[i]
        t += 0.0 if v > 0 else np.float64(v) * np.float64(dy[i])
    total = cuda_core.block_sum(buf, t)
    if cuda.threadIdx.x == 0:
        dw[c] = total


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    s_len = channels(b)[2]
    x, y, w = cuda_core.flat(b.x[0]), cuda_core.flat(b.y), b.p["weight"]
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](x, w, y, s_len)

    dx = None if b.dx[0] is None else cuda_core.flat(b.dx[0])
    dw = b.dp.get("weight")
    if dx is None and dw is None:
        return fwd, nothing
    dy, acc = cuda_core.flat(b.dy), bool(b.acc[0])

    def bwd() -> None:
        if dx is not None:
            backward_dx_cuda[blocks, threads](x, w, dy, dx, acc, s_len)
        if dw is not None:
            backward_dw_cuda[w.size, THREADS](x, dy, dw, s_len)

    return fwd, bwd
