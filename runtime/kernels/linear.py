"""linear kernels: y = x Wᵀ + b through BLAS (np.dot inside @njit).

x is viewed as a matrix [rows, in] once at bind time (all leading axes,
batch included, are rows), so every call is one GEMM.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing


@njit(cache=True)
def forward_cpu(x, w, b, y):  # noqa: ANN001 — numba kernels take arrays
    np.dot(x, w.T, out=y)
    if b.size:
        y += b


@njit(cache=True)
def backward_cpu(x, w, dy, dx, dw, db, acc_dx):
    # dW = dyᵀ x ; db = Σ dy ; dx = dy W (or += when x feeds several modules)
    if dw.size:
        np.dot(dy.T, x, out=dw)
    if db.size:
        db[:] = dy.sum(axis=0)
    if dx.size:
        if acc_dx:
            dx += np.dot(dy, w)
        else:
            np.dot(dy, w, out=dx)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    k = b.x[0].shape[-1]
    x = b.x[0].reshape(-1, k)
    y = b.y.reshape(-1, b.y.shape[-1])
    w = b.p["w"]
    empty = np.zeros(0, w.dtype)
    bias = b.p.get("b", empty)
    fwd = lambda: forward_cpu(x, w, bias, y)  # noqa: E731
    if b.dy is None:
        return fwd, nothing
    dy = b.dy.reshape(y.shape)
    dx = b.dx[0].reshape(x.shape) if b.dx[0] is not None else np.zeros((0, k), w.dtype)
    dw = b.dp.get("w")
    dw = dw if dw is not None else np.zeros((0, k), w.dtype)
    db = b.dp.get("b")
    db = db if db is not None else empty
    acc = b.acc[0]
    return fwd, lambda: backward_cpu(x, w, dy, dx, dw, db, acc)
