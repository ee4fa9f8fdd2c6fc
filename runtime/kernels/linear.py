"""linear kernels: y = x Wᵀ + b through BLAS.

x is viewed as a matrix [rows, in] once at bind time (all leading axes,
batch included, are rows), so forward is one GEMM and backward three.
``gemm`` with beta=1 adds dx into an existing gradient (a tensor read by
several modules) without a temporary.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ._blas import gemm, project


@njit(cache=True)
def forward_cpu(x, w, b, y):
    project(x, w, b, y)


@njit(cache=True)
def backward_cpu(x, w, dy, dx, dw, db, acc_dx):
    # dW = dyᵀ x ; db = Σ dy ; dx = dy W (+= when x feeds several modules)
    if dw.size:
        gemm(dy, x, dw, True, False, 1.0, 0.0)
    if db.size:
        db[:] = 0.0
        for r in range(dy.shape[0]):
            db += dy[r]
    if dx.size:
        gemm(dy, w, dx, False, False, 1.0, 1.0 if acc_dx else 0.0)


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
