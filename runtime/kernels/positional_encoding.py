"""positional_encoding kernels: y = x + PE, the sinusoid table computed once at bind time for
the bound sequence length T (in float64, then cast to the arrays' dtype):
PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(t / 10000^(2i/D)). dx = dy.

On the GPU the same table is uploaded once at bind time; forward is one broadcast-add kernel,
backward a flat copy."""

from __future__ import annotations

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._tables import add_table, add_table_cuda, pass_grad
from ._views import per_sample, per_sample_cuda


def table(t: int, d: int, dtype: np.dtype) -> np.ndarray:
    """The [t, d] sinusoid table."""
    pos = np.arange(t, dtype=np.float64)[:, None]
    angle = pos / 10000.0 ** (np.arange(0, d, 2, dtype=np.float64) / d)
    pe = np.empty((t, d), np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe.astype(dtype)


@njit(cache=True)
def forward_cpu(x, pe, y):
    add_table(x, pe, y)


@njit(cache=True)
def backward_cpu(dy, dx, acc_dx):
    pass_grad(dy, dx, acc_dx)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    _, t, d = b.x[0].shape
    x, y = per_sample(b.x[0]), per_sample(b.y)
    pe = table(t, d, x.dtype).reshape(-1)
    fwd = Launch(forward_cpu, x, pe, y)
    if b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = per_sample(b.dy), per_sample(b.dx[0]), bool(b.acc[0])
    return fwd, Launch(backward_cpu, dy, dx, acc)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    _, t, d = b.x[0].shape
    x, y = per_sample_cuda(b.x[0]), per_sample_cuda(b.y)
    pe = cuda.to_device(table(t, d, x.dtype).reshape(-1))  # bind time: the thunks never copy
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        add_table_cuda[blocks, threads](x, pe, y)

    if b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = cuda_core.flat(b.dy), cuda_core.flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        cuda_core.copy(dy, dx, acc)

    return fwd, bwd
