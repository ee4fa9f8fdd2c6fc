"""CUDA helpers shared by the spatial ops' ``bind_cuda`` (conv2d, the pools, the batch norms).

Window geometry
    ``window_cuda(i, s, p, k, size)``: the device twin of ``_conv_common.window`` (output i's window
    [start, end) along one axis, clipped to the input). ``covering_cuda(h, s, p, k, n_out)``: the
    outputs [i0, i1) whose window (stride s, padding p, size k) covers input cell h. Backward kernels
    gather with it: each input cell sums the outputs that read it, in output order (the order the
    CPU's scatter adds them), so no two threads write one cell and no atomics are needed.

Channel sums
    ``channel_sum(buf, a, ch)`` (device): Σ a[n, ch, l] over an [N, C, L] array by the whole block,
    float64, fixed tree order (``_cuda.block_sum``). ``channel_sum_kernel`` (one block per channel)
    and ``channel_sum(a, out)`` on the host: out[c] = Σ_{n, l} a[n, c, l], conv2d's bias gradient.

Every function that touches ``cuda.*`` is ``@cuda.jit``: the simulator swaps the ``cuda`` global of a
module only while one of its kernels or device functions runs (docs/cuda.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from ..binding import Binding, Thunk, nothing
from . import _cuda
from ._conv_common import pool_geometry, window
from ._cuda import THREADS  # a shared array's shape must be a global int of this module

window_cuda = cuda.jit(device=True)(window.py_func)


@cuda.jit(device=True)
def covering_cuda(h, s, p, k, n_out):
    """[i0, i1): the outputs i < n_out with s·i - p <= h < s·i - p + k (h inside the input)."""
    lo = h + p - k + 1  # the first output starts at or after this tap offset
    i0 = 0 if lo <= 0 else (lo + s - 1) // s  # no negative floor division: its rounding differs
    i1 = min(n_out, (h + p) // s + 1)
    return i0, max(i0, i1)


@cuda.jit(device=True)
def block_channel_sum(buf, a, ch):
    """Σ_{n, l} a[n, ch, l] (float64) over a 3-d [N, C, L] array, computed by the whole 1-d block."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    ln = a.shape[2]
    s = 0.0
    for e in range(t, a.shape[0] * ln, nt):
        s += a[e // ln, ch, e % ln]
    return _cuda.block_sum(buf, s)


@cuda.jit
def channel_sum_kernel(a, out):
    # block c: out[c] = Σ a[:, c, :] (a bias gradient over samples and positions), no atomics
    buf = cuda.shared.array(THREADS, np.float64)
    ch = cuda.blockIdx.x
    total = block_channel_sum(buf, a, ch)
    if cuda.threadIdx.x == 0:
        out[ch] = total


def channel_sum(a: Any, out: Any) -> None:
    """out[c] = Σ_{n, l} a[n, c, l] for a 3-d device array (one block per channel)."""
    if a.shape[1]:
        channel_sum_kernel[a.shape[1], _cuda.reduce_threads(a.shape[0] * a.shape[2])](a, out)


def bind_pool_cuda(b: Binding, forward: Any, backward: Any, saved: str | None = None) -> tuple[Thunk, Thunk]:
    """The thunks of a 2-d pool over [planes, pixels] rows: ``forward(x, y, extra, *geometry)`` and
    ``backward(dy, extra, dx, acc, *geometry)``, where ``extra`` is the saved tensor ``saved``
    (maxpool's argmax) as rows, or else the count_include_pad flag (avgpool)."""
    geo = pool_geometry(b)
    h, w = b.x[0].shape[2], b.x[0].shape[3]
    x = _cuda.rows(b.x[0], h * w)
    y = _cuda.rows(b.y, geo[8] * geo[9])
    extra = _cuda.rows(b.saved[saved], y.shape[1]) if saved else bool(b.attrs["count_include_pad"])
    fwd_launch = _cuda.grid_1d(y.size)

    def fwd() -> None:
        forward[fwd_launch](x, y, extra, *geo)

    if b.dx[0] is None:
        return fwd, nothing
    dy, dx = _cuda.rows(b.dy, y.shape[1]), _cuda.rows(b.dx[0], x.shape[1])
    acc = bool(b.acc[0])
    bwd_launch = _cuda.grid_1d(dx.size)

    def bwd() -> None:
        backward[bwd_launch](dy, extra, dx, acc, *geo)

    return fwd, bwd
