"""cls_token kernels: y[:, 0] = w[0], y[:, 1:] = x; dx = dy[:, 1:], dw = Σ_batch dy[:, 0].

Arrays are viewed per sample as rows ([N, (T+1)·D] for y), so the token is the first D
columns of each row and the sequence the rest.

On the GPU one kernel writes each row of y (token, then sequence); backward copies the
sequence columns of dy into dx (``_copies.ColumnCopy``) and sums the token columns over
the batch (``cuda_core.row_sum``: fixed order, no atomics)."""

from __future__ import annotations

from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._copies import ColumnCopy
from ._tables import batch_sum, bind_learned_table, pass_grad
from ._views import per_sample_cuda


@njit(cache=True)
def forward_cpu(x, w, y):
    d = w.size
    for n in range(x.shape[0]):
        for c in range(d):
            y[n, c] = w[c]
        for c in range(x.shape[1]):
            y[n, d + c] = x[n, c]


@njit(cache=True)
def backward_cpu(dy, dx, dw, acc_dx):
    d = dw.shape[0] if dw.size else dy.shape[1] - dx.shape[1]
    if dx.size:
        pass_grad(dy[:, d:], dx, acc_dx)
    if dw.size:
        batch_sum(dy[:, :d], dw)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_learned_table(b, forward_cpu, backward_cpu)


@cuda.jit
def forward_cuda(x, w, y):
    # y[n, :d] = w, y[n, d:] = x[n] (y [N, (T+1)·D], x [N, T·D], w [D])
    d, cols = w.size, y.shape[1]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        n = i // cols
        c = i - n * cols
        y[n, c] = w[c] if c < d else x[n, c - d]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, y, w = per_sample_cuda(b.x[0]), per_sample_cuda(b.y), cuda_core.flat(b.p["w"])
    d = w.size
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](x, w, y)

    dx = None if b.dx[0] is None else per_sample_cuda(b.dx[0])
    dw = None if b.dp.get("w") is None else cuda_core.flat(b.dp["w"])
    if dx is None and dw is None:
        return fwd, nothing
    dy, acc = per_sample_cuda(b.dy), bool(b.acc[0])
    seq = ColumnCopy(dy, d, dx, 0, x.shape[1], acc) if dx is not None else None
    token = dy[:, :d]  # a strided view: row_sum takes any strides

    def bwd() -> None:
        if seq is not None:
            seq()
        if dw is not None:
            cuda_core.row_sum(token, dw)

    return fwd, bwd
