"""CUDA helpers of the elementwise and data-movement kernels (the device twin of
``_elementwise_common``).

``device_function(fn, **names)``
    A scalar function shared with the CPU, compiled as a CUDA device function with some of its
    globals replaced: the CPU modules bind ``exp = fast_exp`` (a vectorizable exp built from LLVM
    bit casts, CPU only), the device copy gets ``exp = math.exp`` (libdevice's exp, float32 for
    float32 arguments).
Copies
    ``bind_copy_cuda`` (identity, flatten, reshape: flat copies both ways), ``ColumnCopy`` (a band of
    columns between two [rows, cols] arrays: concat's inputs, select's slice, cls_token's sequence).
Per-sample tables
    ``add_table_cuda``: ``y[n, :] = x[n, :] + w`` (parameter, positional_encoding).
Strided gathers
    ``gather_cuda``: ``dst (+)= src`` read through RANK-d strides (transpose), the strides in a small
    int64 array uploaded at bind time (``gather_meta``).
Rows along an axis
    ``bind_rows_cuda``: softmax and log_softmax view arrays as [outer, size, inner]; one block
    reduces each (outer, inner) row with ``_cuda.block_max`` / ``block_sum``.

Every launch shape and view is computed at bind time; the thunks only launch kernels.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

from ..binding import Binding, Thunk, nothing
from . import _cuda
from ._elementwise_common import RANK, around_axis


def device_function(fn: Callable, **names: Any) -> Any:
    """``fn`` as a CUDA device function, its global ``names`` rebound (``exp=math.exp``). The copy
    reads a snapshot of fn's module globals, so make it after everything fn uses is defined."""
    g = dict(fn.__globals__)
    g.update(names)
    clone = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__qualname__, clone.__doc__ = fn.__qualname__, fn.__doc__
    return cuda.jit(device=True)(clone)


def device_functions(*fns: Callable) -> list[Any]:
    """The scalar functions of an exp-based activation on the device (exp = math.exp)."""
    return [device_function(f, exp=math.exp) for f in fns]


# -- copies ---------------------------------------------------------------------------------------


def bind_copy_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    """y = x with any shapes of one size (any dtype); dx = dy (or += dy)."""
    x, y = _cuda.flat(b.x[0]), _cuda.flat(b.y)

    def fwd() -> None:
        _cuda.copy(x, y)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = _cuda.flat(b.dy), _cuda.flat(b.dx[0]), bool(b.acc[0])

    def bwd() -> None:
        _cuda.copy(dy, dx, acc)

    return fwd, bwd


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
        self.launch = _cuda.grid_1d(dst.shape[0] * width)

    def __call__(self) -> None:
        if self.args[4]:
            copy_cols_cuda[self.launch](*self.args)


# -- per-sample tables ----------------------------------------------------------------------------


@cuda.jit
def add_table_cuda(x, w, y):
    # y[n, s] = x[n, s] + w[s] for every sample n (x, y: [N, S]; w: [S])
    s_len = w.size
    for n in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = n // s_len
        s = n - r * s_len
        y[r, s] = x[r, s] + w[s]


def per_sample(a: Any) -> Any:
    """A [N, S] view of a C-contiguous batch device array."""
    return _cuda.rows(a, a.size // a.shape[0])


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


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides of ``shape``, in elements."""
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return tuple(reversed(out))


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


# -- rows along an axis (softmax, log_softmax) ----------------------------------------------------


def bind_rows_cuda(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """Bind a normalisation along ``axis``: ``forward(x, y)`` and ``backward(y, dy, dx, acc)`` get
    [outer, size, inner] views and run one block per (outer, inner) row (a block-stride loop
    over rows past ``MAX_BLOCKS``)."""
    x = b.x[0]
    shape = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    x3, y3 = x.reshape(shape), b.y.reshape(shape)
    n_rows = shape[0] * shape[2]
    blocks, threads = max(1, min(n_rows, _cuda.MAX_BLOCKS)), _cuda.reduce_threads(shape[1])

    def fwd() -> None:
        forward[blocks, threads](x3, y3)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx3, acc = b.dy.reshape(shape), b.dx[0].reshape(shape), bool(b.acc[0])

    def bwd() -> None:
        backward[blocks, threads](y3, dy3, dx3, acc)

    return fwd, bwd
