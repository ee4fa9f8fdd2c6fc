"""mean kernels: y = the mean of x over per-sample ``axes``; dx = dy / count spread back.

At bind time x is regrouped as [k0, r0, k1, r1, k2, r2] (runs of kept and reduced axes
merged, size-1 axes dropped, right-aligned) and y as [k0, k1, k2], so one compiled loop
nest serves every rank and axis set with contiguous innermost loops. ``keepdims`` only
changes y's shape, not its memory order.

On the GPU the same layout is reduced without atomics, in a fixed order, in float64: when the
reduced run r2 is innermost (contiguous), one block per output sums its r0·r1·r2 values with
``cuda_core.block_sum``; otherwise (r2 = 1: the outputs are contiguous along k2) a block of
tw x SUM_LANES threads takes tw ≤ WARP neighbouring outputs, its lanes splitting the r0·r1 values
of each (coalesced reads, as ``cuda_core.row_sum``). Backward spreads dy / count over dx, one thread per
element of dx.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import reduction_layout
from .cuda_core import SUM_LANES, THREADS, WARP  # shared-array shapes: int globals of this module


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


def _layout(b: Binding) -> tuple[tuple[int, ...], tuple[int, int, int], float]:
    """(x's sizes as [k0, r0, k1, r1, k2, r2], y's as [k0, k1, k2], 1 / count)."""
    x = b.x[0]
    rank = x.ndim - 1
    reduced = {a % rank + 1 for a in b.attrs["axes"]}
    sizes = reduction_layout(x.shape, reduced)
    count = 1
    for a in reduced:
        count *= x.shape[a]
    return sizes, (sizes[0], sizes[2], sizes[4]), 1.0 / count


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x = b.x[0]
    sizes, kept, inv = _layout(b)
    x6, y3 = x.reshape(sizes), b.y.reshape(kept)
    fwd = Launch(forward_cpu, x6, y3, inv)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx6, acc = b.dy.reshape(kept), b.dx[0].reshape(sizes), b.acc[0]
    return fwd, Launch(backward_cpu, dy3, dx6, acc, inv)


@cuda.jit
def forward_inner_cuda(x, y, inv_count):
    # r2 > 1: block per output (a, b, c); its threads stride over the (i, j, k) it reduces
    buf = cuda.shared.array(THREADS, np.float64)
    _, r0, k1, r1, k2, r2 = x.shape
    t = cuda.threadIdx.x
    n_red = r0 * r1 * r2
    for out in range(cuda.blockIdx.x, y.size, cuda.gridDim.x):  # block-uniform: all threads sync
        c = out % k2
        b = (out // k2) % k1
        a = out // (k2 * k1)
        s = 0.0
        for n in range(t, n_red, cuda.blockDim.x):
            k = n % r2
            j = (n // r2) % r1
            i = n // (r2 * r1)
            s += x[a, i, b, j, c, k]
        total = cuda_core.block_sum(buf, s)
        if t == 0:
            y[a, b, c] = total * inv_count


@cuda.jit
def forward_outer_cuda(x, y, inv_count):
    # r2 == 1: block (tw, SUM_LANES) per tw ≤ WARP neighbouring c of one (a, b); lane ty sums every
    # SUM_LANES-th (i, j), then a fixed tree adds the lanes
    buf = cuda.shared.array((SUM_LANES, WARP), np.float64)
    _, r0, k1, r1, k2, _ = x.shape
    tx, ty, tw = cuda.threadIdx.x, cuda.threadIdx.y, cuda.blockDim.x
    tiles = (k2 + tw - 1) // tw
    for blk in range(cuda.blockIdx.x, y.shape[0] * k1 * tiles, cuda.gridDim.x):  # block-uniform
        c = (blk % tiles) * tw + tx
        ab = blk // tiles
        b = ab % k1
        a = ab // k1
        s = 0.0
        if c < k2:
            for n in range(ty, r0 * r1, SUM_LANES):
                s += x[a, n // r1, b, n % r1, c, 0]
        buf[ty, tx] = s
        cuda_core.fold_lanes(buf, tx, ty)
        if ty == 0 and c < k2:
            y[a, b, c] = buf[0, tx] * inv_count
        cuda.syncthreads()  # buf is read before the next tile overwrites it


@cuda.jit
def backward_cuda(dy, dx, acc, inv_count):
    # dx[a, i, b, j, c, k] (+)= dy[a, b, c] / count, one thread per element of dx
    _, r0, k1, r1, k2, r2 = dx.shape
    for n in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        m = n // r2
        k = n - m * r2
        c = m % k2
        m //= k2
        j = m % r1
        m //= r1
        b = m % k1
        m //= k1
        i = m % r0
        a = m // r0
        g = dy[a, b, c] * inv_count
        if acc:
            dx[a, i, b, j, c, k] += g
        else:
            dx[a, i, b, j, c, k] = g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    sizes, kept, inv = _layout(b)
    x6, y3 = b.x[0].reshape(sizes), b.y.reshape(kept)
    n_out = y3.size
    if sizes[5] > 1:
        kernel = forward_inner_cuda
        n_red = sizes[1] * sizes[3] * sizes[5]
        blocks, threads = max(1, min(n_out, cuda_core.MAX_BLOCKS)), cuda_core.reduce_threads(n_red)
    else:
        kernel = forward_outer_cuda
        tw = min(WARP, 1 << max(kept[2] - 1, 0).bit_length())  # outputs per block: a power of two
        tiles = kept[0] * kept[1] * -(-kept[2] // tw)
        blocks, threads = max(1, min(tiles, cuda_core.MAX_BLOCKS)), (tw, SUM_LANES)

    def fwd() -> None:
        kernel[blocks, threads](x6, y3, inv)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx6, acc = b.dy.reshape(kept), b.dx[0].reshape(sizes), bool(b.acc[0])
    inv_t = dx6.dtype.type(inv)  # float32 products stay float32
    bwd_blocks, bwd_threads = cuda_core.grid_1d(dx6.size)

    def bwd() -> None:
        backward_cuda[bwd_blocks, bwd_threads](dy3, dx6, acc, inv_t)

    return fwd, bwd
