"""layernorm kernels: per-row normalisation of an [R, M] view (R = N·lead rows, M = norm numel).

Rows are independent: forward and the dx part of backward run rows in parallel (prange) with
float64 accumulators. dw and db reduce over rows, so they run as a second loop parallel over
blocks of columns (each thread owns its columns: no atomics, no per-thread scratch).

Backward with x̂ = (x - μ)·invstd and g = dy ⊙ w: dx = invstd·(g - mean(g) - x̂·mean(g ⊙ x̂)) per row,
dw = Σ_rows dy ⊙ x̂, db = Σ_rows dy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..binding import Binding, Thunk, nothing
from .batchnorm1d import inv_std, norm_grad

BLOCK = 64  # columns per task in the dw/db reduction


@njit(cache=True, parallel=True)
def forward_cpu(x, w, b, mean, invstd, y, eps):
    r, m = x.shape
    for i in prange(r):
        s = 0.0
        for c in range(m):
            s += x[i, c]
        mu = s / m
        ss = 0.0
        for c in range(m):
            d = x[i, c] - mu
            ss += d * d
        inv = inv_std(ss / m, eps)
        mean[i] = mu
        invstd[i] = inv
        mu_, inv_ = mean[i], invstd[i]  # in the array's dtype: keeps the row loop in one precision
        if w.size:
            for c in range(m):
                y[i, c] = (x[i, c] - mu_) * inv_ * w[c] + b[c]
        else:
            for c in range(m):
                y[i, c] = (x[i, c] - mu_) * inv_


@njit(cache=True, parallel=True)
def backward_cpu(x, w, mean, invstd, dy, dx, dw, db, acc_dx):
    r, m = x.shape
    if dx.size:
        for i in prange(r):
            mu, inv = mean[i], invstd[i]
            sg = 0.0
            sgx = 0.0
            for c in range(m):
                g = dy[i, c] * w[c] if w.size else dy[i, c]
                sg += g
                sgx += g * (x[i, c] - mu) * inv
            mg, mgx = sg / m, sgx / m
            for c in range(m):
                g = dy[i, c] * w[c] if w.size else dy[i, c]
                t = norm_grad(g, (x[i, c] - mu) * inv, inv, mg, mgx)
                if acc_dx:
                    dx[i, c] += t
                else:
                    dx[i, c] = t
    if dw.size or db.size:
        for blk in prange((m + BLOCK - 1) // BLOCK):
            c0 = blk * BLOCK
            c1 = min(m, c0 + BLOCK)
            for c in range(c0, c1):
                if dw.size:
                    dw[c] = 0
                if db.size:
                    db[c] = 0
            for i in range(r):
                mu, inv = mean[i], invstd[i]
                for c in range(c0, c1):
                    t = dy[i, c]
                    if dw.size:
                        dw[c] += t * (x[i, c] - mu) * inv
                    if db.size:
                        db[c] += t


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.attrs["normalized_axes"]
    m = math.prod(b.x[0].shape[b.x[0].ndim - k :])
    dt = b.y.dtype
    empty = np.zeros(0, dt)

    def rows(a: np.ndarray) -> np.ndarray:
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
    return fwd, lambda: backward_cpu(x, w, mean, invstd, dy, dx, dw, db, acc)
