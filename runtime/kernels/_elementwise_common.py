"""Helpers shared by the elementwise and data-movement kernels.

Bind-time helpers (pure Python) turn the arena views of a Binding into the
few canonical shapes the kernels loop over: flat 1-d views for elementwise
ops, ``[outer, d, inner]`` views around one axis, and fixed-rank views with
merged axes for transpose and mean (so one compiled kernel serves every
rank). The copy kernels serve identity, flatten and reshape, whose plan
gives them buffers of their own.

Jitted functions that kernels call live here too: ``fast_exp``, an exp that vectorizes
(libm's exp is a call LLVM cannot vectorize, there being no SVML here, which made every
exp-based activation cost 2-5 ns per element), and the row reductions of softmax. Numba's
on-disk cache checks the timestamp of the caller's file only, so after editing any of them
delete the callers' caches (``__pycache__/*.nbi``, ``*.nbc``).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..binding import Binding, Thunk, nothing

# -- a vectorizable exp ---------------------------------------------------------------------


@intrinsic
def _as_float64(typingctx, bits):
    """Reinterpret int64 bits as a float64 (compiles to a register move, vectorizes)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n·_LN2_HI is exact (fdlibm)
_LN2_LO = 1.90821492927058770002e-10


@njit(cache=True, error_model="numpy", inline="always")
def fast_exp(x):
    """e^x in float64 to within 2 ulp for -708 <= x <= 709; 0 below (flushing what would be
    subnormal), inf above, NaN stays NaN. e^x = 2^n · e^r, |r| <= ln2/2, with e^r from its
    Taylor polynomial to r^12 and 2^n built from exponent bits. No call, so loops over it
    vectorize (about 2x libm's speed in float64 here, 8 lanes)."""
    if x < -708.0:
        return 0.0
    if x > 709.0:
        return math.inf
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _as_float64((np.int64(n) + 1023) << 52)


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
    """Bind a normalisation along ``axis``: ``forward(x, y, x2, y2)`` and
    ``backward(y, dy, dx, acc, y2, dy2, dx2)`` get each array as [outer, size, inner] and as
    [outer, size·inner] (contiguous rows when inner is 1)."""
    x = b.x[0]
    shape = around_axis(x, b.attrs["axis"] % (x.ndim - 1))
    rows = (shape[0], shape[1] * shape[2])
    x3, y3, x2, y2 = x.reshape(shape), b.y.reshape(shape), x.reshape(rows), b.y.reshape(rows)
    fwd = lambda: forward(x3, y3, x2, y2)  # noqa: E731
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy3, dx3, acc = b.dy.reshape(shape), b.dx[0].reshape(shape), b.acc[0]
    dy2, dx2 = b.dy.reshape(rows), b.dx[0].reshape(rows)
    return fwd, lambda: backward(y3, dy3, dx3, acc, y2, dy2, dx2)


# -- row reductions (softmax, log_softmax): reassociated adds, so the loops vectorize ----------


@njit(cache=True)
def row_max(x):
    m = x[0]
    for i in range(1, x.size):
        m = max(m, x[i])
    return m


@njit(cache=True, fastmath={"reassoc"})
def row_sum(x):
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s


@njit(cache=True, fastmath={"reassoc"})
def row_dot(x, y):
    s = 0.0
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def row_sum_exp(x, m):
    s = 0.0
    for i in range(x.size):
        s += fast_exp(x[i] - m)
    return s


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
