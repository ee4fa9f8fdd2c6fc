"""concat kernels: y = the inputs joined along a per-sample axis; backward slices dy.

Every array is viewed as [outer, width] around the axis (outer = the axes before it, batch
included; width = the axis times everything after it), so each input fills a column band
[offset_i, offset_i + width_i) of y's rows. The inputs travel as one tuple: one kernel call.

On the GPU each input is one launch of ``_copies.ColumnCopy`` into (from, in
backward) its column band [offset_i, offset_i + width_i) of y's rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._copies import ColumnCopy
from ._views import or_empty


@njit(cache=True)
def forward_cpu(xs, y, offsets):  # xs: tuple of [outer, width_i]; y [outer, Σ width]
    for k in range(len(xs)):
        x = xs[k]
        o = offsets[k]
        for r in range(y.shape[0]):
            for j in range(x.shape[1]):
                y[r, o + j] = x[r, j]


@njit(cache=True)
def backward_cpu(dy, dxs, offsets, acc):  # dxs: empty [0, 0] where not needed
    for k in range(len(dxs)):
        dx = dxs[k]
        if dx.size == 0:
            continue
        o = offsets[k]
        for r in range(dy.shape[0]):
            if acc[k]:
                for j in range(dx.shape[1]):
                    dx[r, j] += dy[r, o + j]
            else:
                for j in range(dx.shape[1]):
                    dx[r, j] = dy[r, o + j]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    rank = b.y.ndim - 1
    ax = b.attrs["axis"] % rank + 1
    outer = int(np.prod(b.y.shape[:ax]))

    def rows(a: np.ndarray) -> np.ndarray:
        return a.reshape(outer, -1)

    xs, y = tuple(rows(a) for a in b.x), rows(b.y)
    offsets = np.cumsum([0] + [a.shape[1] for a in xs]).astype(np.int64)
    fwd = Launch(forward_cpu, xs, y, offsets)
    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = rows(b.dy)
    dxs = tuple(rows(g) if g is not None else or_empty(None, y.dtype, 2) for g in b.dx)
    acc = np.array(b.acc, np.bool_)
    return fwd, Launch(backward_cpu, dy, dxs, offsets, acc)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    rank = b.y.ndim - 1
    ax = b.attrs["axis"] % rank + 1
    outer = int(np.prod(b.y.shape[:ax]))

    def rows(a: Any) -> Any:
        return cuda_core.rows(a, a.size // outer)

    xs, y = [rows(a) for a in b.x], rows(b.y)
    offsets = np.cumsum([0] + [a.shape[1] for a in xs]).tolist()
    fwd_parts = [ColumnCopy(a, 0, y, o, a.shape[1], False) for a, o in zip(xs, offsets, strict=False)]

    def fwd() -> None:
        for part in fwd_parts:
            part()

    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = rows(b.dy)
    bwd_parts = [
        ColumnCopy(dy, o, rows(g), 0, a.shape[1], acc)
        for g, a, o, acc in zip(b.dx, xs, offsets, b.acc, strict=False)
        if g is not None
    ]

    def bwd() -> None:
        for part in bwd_parts:
            part()

    return fwd, bwd
