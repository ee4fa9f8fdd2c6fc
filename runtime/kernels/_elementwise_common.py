"""Helpers shared by the elementwise and data-movement kernels.

Bind-time helpers (pure Python) turn the arena views of a Binding into the
few canonical shapes the kernels loop over: flat 1-d views for elementwise
ops, ``[outer, d, inner]`` views around one axis, and fixed-rank views with
merged axes for transpose and mean (so one compiled kernel serves every
rank). The copy kernels serve identity, flatten and reshape, whose plan
gives them buffers of their own.

Only whole kernels live here, never scalar functions that op kernels call:
numba's on-disk cache checks the timestamp of the caller's file only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (never a copy)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"kernel needs a C-contiguous array, got strides {a.strides} for shape {a.shape}")
    return a.reshape(-1)


def or_empty(g: np.ndarray | None, like: np.ndarray, ndim: int = 1) -> np.ndarray:
    """``g``, or an empty stand-in of like's dtype for a gradient nobody needs (kernels test ``.size``)."""
    return g if g is not None else np.zeros((0,) * ndim, like.dtype)


def around_axis(a: np.ndarray, axis: int) -> tuple[int, int, int]:
    """(outer, size, inner) of a batch-first array around a per-sample ``axis`` (normalised)."""
    ax = axis + 1
    return math.prod(a.shape[:ax]), a.shape[ax], math.prod(a.shape[ax + 1 :])


RANK = 6  # the rank transpose and mean kernels are compiled for


def merged_permutation(shape: tuple[int, ...], perm: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Merge the axes of ``shape`` that stay adjacent and in order under ``perm`` (size-1 axes
    dropped). Returns (merged source shape, permutation of the merged axes): the same data
    movement with as few axes as possible."""
    keep = [a for a in range(len(shape)) if shape[a] != 1]
    renum = {a: i for i, a in enumerate(keep)}
    p = [renum[a] for a in perm if shape[a] != 1]
    s = [shape[a] for a in keep]
    groups: list[list[int]] = []
    for a in p:
        if groups and a == groups[-1][-1] + 1:
            groups[-1].append(a)
        else:
            groups.append([a])
    order = sorted(range(len(groups)), key=lambda g: groups[g][0])
    src = tuple(math.prod(s[a] for a in groups[g]) for g in order)
    return src, tuple(order.index(k) for k in range(len(groups)))


def pad_rank(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as a RANK-d view with leading size-1 axes."""
    if a.ndim > RANK:
        raise NotImplementedError(f"{what} needs {a.ndim} axes after merging; kernels handle up to {RANK}")
    return a[(None,) * (RANK - a.ndim)]


def reduction_layout(shape: tuple[int, ...], reduced: set[int]) -> tuple[int, ...]:
    """Sizes of ``shape`` regrouped as [k0, r0, k1, r1, k2, r2] (k kept, r reduced axes; merged runs,
    right-aligned so the innermost loops are the longest)."""
    runs: list[list] = []  # [is_reduced, size]
    for a, d in enumerate(shape):
        if d == 1:
            continue
        r = a in reduced
        if runs and runs[-1][0] == r:
            runs[-1][1] *= d
        else:
            runs.append([r, d])
    sizes = [1] * RANK
    slot = RANK - 1  # slots alternate k, r, k, r, ...: odd slots are reduced
    for r, d in reversed(runs):
        while slot >= 0 and (slot % 2 == 1) != r:
            slot -= 1
        if slot < 0:
            raise NotImplementedError(f"mean over {sorted(reduced)} of {shape}: too many alternating runs")
        sizes[slot] = d
        slot -= 1
    return tuple(sizes)


def bind_unary(b: Binding, forward, backward, reads_output: bool, *attrs) -> tuple[Thunk, Thunk]:
    """Bind a unary elementwise op over flat views: ``forward(x, y, *attrs)`` and
    ``backward(x or y, dy, dx, acc, *attrs)``."""
    x, y = flat(b.x[0]), flat(b.y)
    fwd = lambda: forward(x, y, *attrs)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    src = y if reads_output else x
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    return fwd, lambda: backward(src, dy, dx, acc, *attrs)


def bind_rows(b: Binding, forward, backward) -> tuple[Thunk, Thunk]:
    """Bind a normalisation along ``axis``: forward(x, y), backward(y, dy, dx, acc) on 3-d views."""
    x = b.x[0]
    shape = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    x3, y3 = x.reshape(shape), b.y.reshape(shape)
    fwd = lambda: forward(x3, y3)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx3, acc = b.dy.reshape(shape), b.dx[0].reshape(shape), b.acc[0]
    return fwd, lambda: backward(y3, dy3, dx3, acc)


# -- plain copies (identity, flatten, reshape) --------------------------------------------------------


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
    fwd = lambda: copy_cpu(x, y, False)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = flat(b.dy), flat(b.dx[0]), b.acc[0]
    return fwd, lambda: copy_cpu(dy, dx, acc)
