"""parameter kernels: y = x + w, w of the per-sample shape broadcast over the batch;
dx = dy, dw = Σ_batch dy."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._losses_embed_common import add_table, batch_sum, or_empty, pass_grad, per_sample


@njit(cache=True)
def forward_cpu(x, w, y):
    add_table(x, w, y)


@njit(cache=True)
def backward_cpu(dy, dx, dw, acc_dx):
    if dx.size:
        pass_grad(dy, dx, acc_dx)
    if dw.size:
        batch_sum(dy, dw)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, w = per_sample(b.x[0]), per_sample(b.y), b.p["w"].reshape(-1)
    fwd = lambda: forward_cpu(x, w, y)  # noqa: E731
    dx = or_empty(None if b.dx[0] is None else per_sample(b.dx[0]), w.dtype, 2)
    dw = or_empty(None if b.dp.get("w") is None else b.dp["w"].reshape(-1), w.dtype)
    if not dx.size and not dw.size:
        return fwd, nothing
    dy, acc = per_sample(b.dy), bool(b.acc[0])
    return fwd, lambda: backward_cpu(dy, dx, dw, acc)
