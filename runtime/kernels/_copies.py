"""Copies, CPU and CUDA: the kernels of ops that only move data.

``copy_cpu``/``bind_copy`` and ``bind_copy_cuda``: flat copies both ways (identity, flatten and
reshape, whose plan gives them buffers of their own). ``ColumnCopy``: a band of columns between two
[rows, cols] device arrays (concat's inputs, select's slice, cls_token's sequence). ``gather_cuda``:
``dst (+)= src`` read through RANK-d strides (transpose), the strides in a small int64 array
uploaded at bind time (``gather_meta``). Every launch shape and view is computed at bind time; the
thunks only launch kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import RANK, flat

# -- flat copies ----------------------------------------------------------------------------------


@njit(cache=True)
def copy_cpu(src, dst, acc):  # numba kernels take arrays
    # dst = src, or dst += src (a gradient feeding several modules); both flat
    if acc:
        for i in range(dst.size):
            dst[i] += src[i]
    else:
        for i in range(dst.size):
            dst[i] = src[i]


def bind_copy(b: Binding) -> tuple[Thunk, Thunk]:
    """y = x with any shapes of one size; dx = dy (or += dy)."""
    x, y = flat(b.x[0]), flat(b.y)
    fwd = Launch(copy_cpu, x, y, False)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    return fwd, Launch(copy_cpu, dy, dx, acc)


def bind_copy_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    """y = x with any shapes of one size (any dtype); dx = dy (or += dy)."""
    x, y = cuda_core.flat(b.x[0]), cuda_core.flat(b.y)

    def fwd() -> None:
        cuda_core.copy(x, y)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = cuda_core.flat(b.dy), cuda_core.flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        cuda_core.copy(dy, dx, acc)

    return fwd, bwd


# -- bands of columns -----------------------------------------------------------------------------


@cuda.jit
def copy_cols_cuda(src, s0, dst, d0, width, acc):
    # dst[r, d0 + j] (+)= src[r, s0 + j] for j < width, every row r (both 2-d, C-contiguous)
    for n in range(cuda.grid(1), dst.shape[0] * width, cuda.gridsize(1)):
        r = n // width
        j = n - r * width
        if acc:
            dst[r, d0 + j] += src[r, s0 + j]
        else:
            dst[r, d0 + j] = src[r, s0 + j]


class ColumnCopy:
    """``dst[:, d0 : d0 + width] (+)= src[:, s0 : s0 + width]`` for 2-d C-contiguous device arrays of
    equal rows, bound once: the column offsets travel as scalars, so no strided view is made."""

    def __init__(self, src: Any, s0: int, dst: Any, d0: int, width: int, acc: bool) -> None:
        self.args = (src, int(s0), dst, int(d0), int(width), bool(acc))
        self.launch = cuda_core.grid_1d(dst.shape[0] * width)

    def __call__(self) -> None:
        if self.args[4]:
            copy_cols_cuda[self.launch](*self.args)


# -- strided gathers (transpose) ------------------------------------------------------------------


def gather_meta(shape: tuple[int, ...], strides: tuple[int, ...], what: str) -> Any:
    """The int64 [2·RANK] device array of ``gather``: dst's shape then the source strides (in
    elements) of each dst axis, padded on the left with size-1, stride-0 axes."""
    if len(shape) > RANK:
        raise NotImplementedError(
            f"{what} needs {len(shape)} axes after merging; kernels handle up to {RANK}"
        )
    pad = RANK - len(shape)
    meta = np.array([1] * pad + list(shape) + [0] * pad + list(strides), np.int64)
    return cuda.to_device(meta)


@cuda.jit
def gather_cuda(src, dst, meta, acc):
    # dst[n] (+)= src[Σ_k idx_k·meta[RANK + k]], idx the RANK-d index of n in dst's shape meta[:RANK].
    # Writes are coalesced; reads follow the permutation.
    for n in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        rem = n
        off = 0
        for k in range(RANK - 1, -1, -1):
            d = meta[k]
            q = rem // d
            off += (rem - q * d) * meta[RANK + k]
            rem = q
        if acc:
            dst[n] += src[off]
        else:
            dst[n] = src[off]
