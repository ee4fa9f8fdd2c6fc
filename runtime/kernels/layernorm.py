"""layernorm kernels: per-row normalisation of an [R, M] view (R = N·lead rows, M = norm numel).

Rows are independent: forward and the dx part of backward run rows in parallel (prange) with
float64 accumulators; a fused activation (``Binding.epilogue``, EPILOGUES_CPU) is applied to each
row of y right after it is written (``_epilogue.act_inplace``). dw and db reduce over rows, so
they run as a second loop parallel over blocks of columns (about one block per thread, each owns
its columns: no atomics, no scratch; the sums accumulate in the parameter dtype, row by row, so
they do not depend on the blocking).

Backward with x̂ = (x - μ)·invstd and g = dy ⊙ w: dx = invstd·(g - mean(g) - x̂·mean(g ⊙ x̂)) per row,
dw = Σ_rows dy ⊙ x̂, db = Σ_rows dy.

CUDA: one block per row for forward and for dx (the row's sums are ``cuda_core.block_sum`` reductions,
float64, fixed order); dw and db are column sums over the rows in one kernel shaped like
``cuda_core.row_sum`` (a warp of columns, SUM_LANES lanes splitting the rows, a fixed tree over the
lanes): deterministic, no atomics.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, get_num_threads, njit, prange

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import _epilogue as epilogue
from . import cuda_core
from ._epilogue import act_inplace
from ._views import as_rows
from .batchnorm1d import (  # numba's cache won't see edits there: clear it
    FAST,
    _inv_std_cuda,
    _norm_grad_cuda,
    inv_std,
    norm_grad,
    row_moments,
)
from .cuda_core import SUM_LANES, THREADS, WARP  # shared-array shapes: global ints of this module

#: The activations forward_cpu applies to y itself (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU

BLOCK = 16  # dw/db reduction: columns per task are a multiple of this (one cache line)


@njit(cache=True, parallel=True, fastmath=FAST)
def forward_cpu(x, w, b, mean, invstd, y, eps, act):
    r, m = x.shape
    for i in prange(r):
        xr, yr = x[i], y[i]  # row views: cheaper indexing, and the loops vectorize
        mu, var = row_moments(xr, m)
        mean[i] = mu
        invstd[i] = inv_std(var, eps)
        mu_, inv_ = mean[i], invstd[i]  # in the array's dtype: keeps the row loop in one precision
        if w.size:
            for c in range(m):
                yr[c] = (xr[c] - mu_) * inv_ * w[c] + b[c]
        else:
            for c in range(m):
                yr[c] = (xr[c] - mu_) * inv_
        act_inplace(yr, 0, m, act)  # the fused activation on the row just written (in cache)


@njit(cache=True, parallel=True, fastmath=FAST)
def backward_cpu(x, w, mean, invstd, dy, dx, dw, db, acc_dx, step):
    r, m = x.shape
    if dx.size:
        for i in prange(r):
            xr, dyr, dxr = x[i], dy[i], dx[i]
            mu, inv = mean[i], invstd[i]
            sg = 0.0
            sgx = 0.0
            for c in range(m):
                g = dyr[c] * w[c] if w.size else dyr[c]
                sg += g
                sgx += g * (xr[c] - mu) * inv
            mg, mgx = sg / m, sgx / m
            for c in range(m):
                g = dyr[c] * w[c] if w.size else dyr[c]
                t = norm_grad(g, (xr[c] - mu) * inv, inv, mg, mgx)
                if acc_dx:
                    dxr[c] += t
                else:
                    dxr[c] = t
    if dw.size or db.size:
        # each task owns `step` columns; a column's sum runs over the rows in order whatever the
        # blocking, so the result does not depend on the thread count
        for blk in prange((m + step - 1) // step):
            c0 = blk * step
            c1 = min(m, c0 + step)
            dwb, dbb = dw[c0:c1], db[c0:c1]
            dwb[:] = 0
            dbb[:] = 0
            for i in range(r):
                mu, inv = mean[i], invstd[i]
                xr, dyr = x[i, c0:c1], dy[i, c0:c1]
                for c in range(c1 - c0):
                    t = dyr[c]
                    if dwb.size:
                        dwb[c] += t * ((xr[c] - mu) * inv)
                    if dbb.size:
                        dbb[c] += t


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.attrs["normalized_axes"]
    m = math.prod(b.x[0].shape[b.x[0].ndim - k :])
    dt = b.y.dtype
    empty = np.zeros(0, dt)

    def rows(a: np.ndarray) -> np.ndarray:
        return as_rows(a, m)

    def flat(a: np.ndarray | None) -> np.ndarray:
        return a.reshape(-1) if a is not None else empty

    x, y = rows(b.x[0]), rows(b.y)
    w, bias = flat(b.p.get("w")), flat(b.p.get("b"))
    mean, invstd = flat(b.saved["mean"]), flat(b.saved["invstd"])
    eps = float(b.attrs["eps"])
    act = epilogue.code(b)
    fwd = Launch(forward_cpu, x, w, bias, mean, invstd, y, eps, act)
    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    dx = rows(b.dx[0]) if b.dx[0] is not None else np.zeros((0, m), dt)
    dw, db = flat(b.dp.get("w")), flat(b.dp.get("b"))
    acc = bool(b.acc[0])
    step = max(1, -(-m // (get_num_threads() * BLOCK))) * BLOCK  # about one column block per thread
    return fwd, Launch(backward_cpu, x, w, mean, invstd, dy, dx, dw, db, acc, step)


@cuda.jit
def forward_cuda(x, w, b, mean, invstd, y, eps):
    # block r: the statistics of row r (two passes, as the CPU), then y over the row
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    m = x.shape[1]
    s = 0.0
    for c in range(t, m, nt):
        s += x[r, c]
    mu = cuda_core.block_sum(buf, s) / m
    ss = 0.0
    for c in range(t, m, nt):
        d = x[r, c] - mu
        ss += d * d
    inv = _inv_std_cuda(cuda_core.block_sum(buf, ss) / m, eps)
    if t == 0:
        mean[r] = mu
        invstd[r] = inv
    mu_, inv_ = mean.dtype.type(mu), invstd.dtype.type(inv)  # as stored: the row loop in one dtype
    for c in range(t, m, nt):
        if w.size:
            y[r, c] = (x[r, c] - mu_) * inv_ * w[c] + b[c]
        else:
            y[r, c] = (x[r, c] - mu_) * inv_


@cuda.jit
def backward_cuda(x, w, mean, invstd, dy, dx, acc):
    # block r: dx of row r from the row's Σ g and Σ g·x̂ (g = dy ⊙ w)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    m = x.shape[1]
    mu, inv = mean[r], invstd[r]
    sg = 0.0
    sgx = 0.0
    for c in range(t, m, nt):
        g = dy[r, c] * w[c] if w.size else dy[r, c]
        sg += g
        sgx += g * (x[r, c] - mu) * inv
    mg = dx.dtype.type(cuda_core.block_sum(buf, sg) / m)
    mgx = dx.dtype.type(cuda_core.block_sum(buf, sgx) / m)
    for c in range(t, m, nt):
        g = dy[r, c] * w[c] if w.size else dy[r, c]
        v = _norm_grad_cuda(g, (x[r, c] - mu) * inv, inv, mg, mgx)
        if acc:
            dx[r, c] += v
        else:
            dx[r, c] = v


@cuda.jit
def param_grads_cuda(x, mean, invstd, dy, dw, db):
    # column j: dw[j] = Σ_r dy[r, j]·x̂[r, j], db[j] = Σ_r dy[r, j]; SUM_LANES lanes (threadIdx.y)
    # take every SUM_LANES-th row, then a fixed tree adds the lanes (as cuda_core.row_sum)
    bw = cuda.shared.array((SUM_LANES, WARP), np.float64)
    bb = cuda.shared.array((SUM_LANES, WARP), np.float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * cuda.blockDim.x + tx
    sw = 0.0
    sb = 0.0
    if j < x.shape[1]:
        for i in range(ty, x.shape[0], SUM_LANES):
            d = dy[i, j]
            sw += d * ((x[i, j] - mean[i]) * invstd[i])
            sb += d
    bw[ty, tx] = sw
    bb[ty, tx] = sb
    cuda.syncthreads()
    h = SUM_LANES // 2
    while h > 0:
        if ty < h:
            bw[ty, tx] += bw[ty + h, tx]
            bb[ty, tx] += bb[ty + h, tx]
        cuda.syncthreads()
        h //= 2
    if ty == 0 and j < x.shape[1]:
        if dw.size:
            dw[j] = bw[0, tx]
        if db.size:
            db[j] = bb[0, tx]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.attrs["normalized_axes"]
    m = math.prod(b.x[0].shape[b.x[0].ndim - k :])
    dt = b.y.dtype
    empty = cuda_core.empty(dt)

    def flat(a):
        return cuda_core.flat(a) if a is not None else empty

    x, y = cuda_core.rows(b.x[0], m), cuda_core.rows(b.y, m)
    w, bias = flat(b.p.get("w")), flat(b.p.get("b"))
    mean, invstd = flat(b.saved["mean"]), flat(b.saved["invstd"])
    eps = float(b.attrs["eps"])
    r = x.shape[0]
    threads = cuda_core.reduce_threads(m)

    def fwd() -> None:
        forward_cuda[r, threads](x, w, bias, mean, invstd, y, eps)

    if b.dy is None:
        return fwd, nothing
    dy = cuda_core.rows(b.dy, m)
    dx = cuda_core.rows(b.dx[0], m) if b.dx[0] is not None else None
    dw, db = flat(b.dp.get("w")), flat(b.dp.get("b"))
    acc = bool(b.acc[0])
    lanes = min(WARP, 1 << (m - 1).bit_length())  # columns per block of the dw/db kernel
    col_blocks = -(-m // lanes)

    def bwd() -> None:
        if dx is not None:
            backward_cuda[r, threads](x, w, mean, invstd, dy, dx, acc)
        if dw.size or db.size:
            param_grads_cuda[col_blocks, (lanes, SUM_LANES)](x, mean, invstd, dy, dw, db)

    return fwd, bwd
