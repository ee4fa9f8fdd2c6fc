"""Per-sample tables broadcast over the batch (parameter, positional_encoding, cls_token), CPU and
CUDA: ``y[n, :] = x[n, :] + w`` (``add_table``, ``add_table_cuda``), the gradient passed through
(``pass_grad``) and summed over the batch (``batch_sum``), and ``bind_learned_table``, the CPU
binding of an op that combines each sample with one learned vector. Arrays are per-sample [N, S]
views (``_views.per_sample``).
"""

from __future__ import annotations

from typing import Any

from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from ._views import or_empty, per_sample


@njit(cache=True)
def add_table(x, w, y):
    """y[n, :] = x[n, :] + w for every sample n (x, y: [N, S]; w: [S])."""
    for n in range(x.shape[0]):
        for s in range(x.shape[1]):
            y[n, s] = x[n, s] + w[s]


@njit(cache=True)
def pass_grad(dy, dx, acc):
    """dx = dy, or dx += dy when acc (2-d, any strides)."""
    for n in range(dy.shape[0]):
        if acc:
            for s in range(dy.shape[1]):
                dx[n, s] += dy[n, s]
        else:
            for s in range(dy.shape[1]):
                dx[n, s] = dy[n, s]


@njit(cache=True)
def batch_sum(dy, dw):
    """dw = Σ_n dy[n, :] (dy: [N, S], any strides; dw: [S])."""
    dw[:] = 0
    for n in range(dy.shape[0]):
        for s in range(dy.shape[1]):
            dw[s] += dy[n, s]


def bind_learned_table(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """The CPU thunks of an op that combines each sample with one learned vector ``w``
    (parameter, cls_token): ``forward(x, w, y)``, ``backward(dy, dx, dw, acc_dx)`` on
    per-sample [N, S] views, with an empty dx or dw where it is not needed."""
    x, y, w = per_sample(b.x[0]), per_sample(b.y), b.p["w"].reshape(-1)
    fwd = Launch(forward, x, w, y)
    dx = or_empty(None if b.dx[0] is None else per_sample(b.dx[0]), w.dtype, 2)
    dw = or_empty(None if b.dp.get("w") is None else b.dp["w"].reshape(-1), w.dtype)
    if not dx.size and not dw.size:
        return fwd, nothing
    dy, acc = per_sample(b.dy), bool(b.acc[0])
    return fwd, Launch(backward, dy, dx, dw, acc)


@cuda.jit
def add_table_cuda(x, w, y):
    # y[n, s] = x[n, s] + w[s] for every sample n (x, y: [N, S]; w: [S])
    s_len = w.size
    for n in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = n // s_len
        s = n - r * s_len
        y[r, s] = x[r, s] + w[s]
