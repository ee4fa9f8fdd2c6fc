"""embedding kernels: y[i, :] = w[ids[i], :] over the flattened ids; backward zeroes dw and
scatter-adds dy rows into it (in id order, so repeated ids sum the same way every run).

Ids outside [0, num_embeddings) are checked in the kernel before any row is touched and raise
ValueError after the call. Both loops are serial: the gather runs near memory speed, and a
parallel one won at most ~50 µs per step on 2 cores (4096 ids x 64) while its spinning OpenMP
workers would compete with the GEMMs around it; the scatter is dominated by zeroing dw.

CUDA: forward is one thread per output value; an id out of range gives a NaN row (a kernel cannot
raise) and the check registered in ``b.checks`` raises on the host. Backward needs no atomics: the
block of table row k (and of a slice of its columns, one thread per column) scans all the ids,
staged through shared memory a block at a time, and sums the dy rows that hold k in position
order — the CPU's order, so dw matches it exactly. That costs O(num_embeddings · #ids) id reads:
fine for the small vocabularies netc's models use; a large vocabulary would want a sort by id first.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._ids import check_ids, checked, device_check, new_flag
from ._views import as_rows, flat
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module


@njit(cache=True)
def forward_cpu(ids, w, y, flag):
    if not check_ids(ids, w.shape[0], flag):
        return
    for i in range(ids.size):
        k = ids[i]
        for c in range(w.shape[1]):  # a loop, not a slice copy: no overlap check per row
            y[i, c] = w[k, c]


@njit(cache=True)
def backward_cpu(ids, dy, dw, flag):
    if not check_ids(ids, dw.shape[0], flag):
        return
    dw[:] = 0
    for i in range(ids.size):
        k = ids[i]
        for c in range(dw.shape[1]):
            dw[k, c] += dy[i, c]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    w = b.p["w"]
    ids, d = flat(b.x[0]), w.shape[1]
    y = as_rows(b.y, d)
    flag = new_flag()
    where, n = f"embedding '{b.module}'", w.shape[0]
    fwd = checked(forward_cpu, (ids, w, y, flag), flag, "token id", where, n)
    dw = b.dp.get("w")
    if dw is None:
        return fwd, nothing
    dy = as_rows(b.dy, d)
    return fwd, checked(backward_cpu, (ids, dy, dw, flag), flag, "token id", where, n)


@cuda.jit
def forward_cuda(ids, w, y):
    # y[i, c] = w[ids[i], c]; NaN for an id outside [0, num_embeddings) (never read out of bounds)
    d = w.shape[1]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        i, c = e // d, e % d
        k = ids[i]
        if k < 0 or k >= w.shape[0]:
            y[i, c] = math.nan
        else:
            y[i, c] = w[k, c]


@cuda.jit
def backward_cuda(ids, dy, dw):
    # block (k, column slice): dw[k, c] = Σ_{i: ids[i] = k} dy[i, c], summed in position order
    sid = cuda.shared.array(THREADS, np.int64)
    k, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    c = cuda.blockIdx.y * nt + t
    s = dw.dtype.type(0)
    for i0 in range(0, ids.size, nt):
        if i0 + t < ids.size:  # the block loads the next nt ids together, then every thread scans them
            sid[t] = ids[i0 + t]
        cuda.syncthreads()
        if c < dw.shape[1]:
            for j in range(min(nt, ids.size - i0)):
                if sid[j] == k:
                    s += dy[i0 + j, c]
        cuda.syncthreads()  # all have scanned before the next load
    if c < dw.shape[1]:
        dw[k, c] = s


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    w = b.p["w"]
    ids, d = cuda_core.flat(b.x[0]), w.shape[1]
    y = cuda_core.rows(b.y, d)
    n = w.shape[0]
    launch = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[launch](ids, w, y)

    b.checks.append(device_check(ids, n, "embedding", b.module, "token id"))
    dw = b.dp.get("w")
    if dw is None:
        return fwd, nothing
    dy = cuda_core.rows(b.dy, d)
    threads = min(THREADS, -(-d // cuda_core.WARP) * cuda_core.WARP)  # one thread per column of a row
    grid = (n, -(-d // threads))

    def bwd() -> None:
        backward_cuda[grid, threads](ids, dy, dw)

    return fwd, bwd
