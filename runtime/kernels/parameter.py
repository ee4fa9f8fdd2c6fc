"""parameter kernels: y = x + w, w of the per-sample shape broadcast over the batch;
dx = dy, dw = Σ_batch dy.

On the GPU: one broadcast-add kernel; dx is a flat copy and dw a column sum of dy viewed as
[N, S] (``cuda_core.row_sum``: fixed order, no atomics)."""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._tables import add_table, add_table_cuda, batch_sum, bind_learned_table, pass_grad
from ._views import per_sample_cuda


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
    return bind_learned_table(b, forward_cpu, backward_cpu)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, w = per_sample_cuda(b.x[0]), per_sample_cuda(b.y), cuda_core.flat(b.p["w"])
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        add_table_cuda[blocks, threads](x, w, y)

    dx = None if b.dx[0] is None else cuda_core.flat(b.dx[0])
    dw = None if b.dp.get("w") is None else cuda_core.flat(b.dp["w"])
    if dx is None and dw is None:
        return fwd, nothing
    dy, acc = per_sample_cuda(b.dy), bool(b.acc[0])
    dy_flat = cuda_core.flat(dy)

    def bwd() -> None:
        if dx is not None:
            cuda_core.copy(dy_flat, dx, acc)
        if dw is not None:
            cuda_core.row_sum(dy, dw)

    return fwd, bwd
