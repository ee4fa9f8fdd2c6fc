"""layernorm kernels: per-row normalisation of an [R, M] view (R = N·lead rows, M = norm numel).

Rows are independent: forward and the dx part of backward run rows in parallel (prange) with
float64 accumulators. dw and db reduce over rows, so they run as a second loop parallel over
blocks of columns (about one block per thread, each owns its columns: no atomics, no scratch;
the sums accumulate in the parameter dtype, row by row, so they do not depend on the blocking).

Backward with x̂ = (x - μ)·invstd and g = dy ⊙ w: dx = invstd·(g - mean(g) - x̂·mean(g ⊙ x̂)) per row,
dw = Σ_rows dy ⊙ x̂, db = Σ_rows dy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

from ..binding import Binding, Thunk, nothing
from .batchnorm1d import FAST, inv_std, norm_grad  # numba's cache won't see edits there: clear it

BLOCK = 16  # dw/db reduction: columns per task are a multiple of this (one cache line)


@njit(cache=True, parallel=True, fastmath=FAST)
def forward_cpu(x, w, b, mean, invstd, y, eps):
    r, m = x.shape
    for i in prange(r):
        xr, yr = x[i], y[i]  # row views: cheaper indexing, and the loops vectorize
        s = 0.0
        for c in range(m):
            s += xr[c]
        mu = s / m
        ss = 0.0
        for c in range(m):
            d = xr[c] - mu
            ss += d * d
        mean[i] = mu
        invstd[i] = inv_std(ss / m, eps)
        mu_, inv_ = mean[i], invstd[i]  # in the array's dtype: keeps the row loop in one precision
        if w.size:
            for c in range(m):
                yr[c] = (xr[c] - mu_) * inv_ * w[c] + b[c]
        else:
            for c in range(m):
                yr[c] = (xr[c] - mu_) * inv_


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
        if not a.flags.c_contiguous:  # a reshape would copy, and the kernels would write the copy
            raise ValueError(f"{b.module}: kernel needs C-contiguous arrays, got strides {a.strides}")
        return a.reshape(-1, m)

    def flat(a: np.ndarray | None) -> np.ndarray:
        return a.reshape(-1) if a is not None else empty

    x, y = rows(b.x[0]), rows(b.y)
    w, bias = flat(b.p.get("w")), flat(b.p.get("b"))
    mean, invstd = flat(b.saved["mean"]), flat(b.saved["invstd"])
    eps = float(b.attrs["eps"])
    fwd = lambda: forward_cpu(x, w, bias, mean, invstd, y, eps)  # noqa: E731
    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    dx = rows(b.dx[0]) if b.dx[0] is not None else np.zeros((0, m), dt)
    dw, db = flat(b.dp.get("w")), flat(b.dp.get("b"))
    acc = bool(b.acc[0])
    step = max(1, -(-m // (get_num_threads() * BLOCK))) * BLOCK  # about one column block per thread
    return fwd, lambda: backward_cpu(x, w, mean, invstd, dy, dx, dw, db, acc, step)
