"""Bind-time views of arena arrays: the few canonical shapes the kernels loop over.

Every helper here is pure Python, runs once when a step is bound, and never copies: kernels write
through the views into the arena, so a view that would need a copy is an error. Host (NumPy)
views: ``flat`` (1-d), ``as_rows`` ([rows, cols]), ``per_sample`` ([N, S]), ``view`` (any shape),
``or_empty`` (a size-0 stand-in for a gradient nobody needs; kernels test ``.size``).
``as_planes`` (host or device) rebinds a 1-d or global op to the 2-d op that computes it. Device twins
of flat and rows are ``cuda_core.flat`` / ``cuda_core.rows``; ``per_sample_cuda`` is built on them.

Axis layouts (shared by host and device binders): ``around_axis`` ([outer, size, inner] around
one axis: softmax, select, maxout), and fixed-rank views with merged axes so one compiled kernel
serves every rank (``RANK``, ``merged_permutation`` and ``pad_rank`` for transpose,
``reduction_layout`` for mean, ``c_strides`` for the device gather).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..binding import Binding
from . import cuda_core

# -- host views -----------------------------------------------------------------------------------


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (never a copy: kernels write through it)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"kernel needs a C-contiguous array, got strides {a.strides} for shape {a.shape}")
    return a.reshape(-1)


def as_rows(a: np.ndarray, cols: int) -> np.ndarray:
    """A 2-d [rows, cols] view of a C-contiguous array."""
    return flat(a).reshape(-1, cols)


def per_sample(a: np.ndarray) -> np.ndarray:
    """A [N, S] view of a C-contiguous batch array."""
    return flat(a).reshape(a.shape[0], -1)


def view(a: np.ndarray, *shape: int) -> np.ndarray:
    """a reshaped without copying (raises if it would copy: a kernel must write into the arena)."""
    v = a.view()
    v.shape = shape
    return v


def or_empty(a: np.ndarray | None, dtype: Any, ndim: int = 1) -> np.ndarray:
    """``a``, or an empty array of rank ``ndim`` that the kernels read as "not needed"."""
    return a if a is not None else np.zeros((0,) * ndim, dtype)


def plane_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """[N, C, ...] as the 2-d plane [N, C, 1, S] (S the product of the trailing axes, 1 if none);
    a rank-1 shape (a bias) stays."""
    return shape if len(shape) < 2 else (shape[0], shape[1], 1, math.prod(shape[2:]))


def as_planes(b: Binding, attrs: dict[str, Any]) -> Binding:
    """``b`` as the binding of the 2-d op with attributes ``attrs`` that computes a 1-d op (conv1d,
    the 1-d pools: [N, C, L] is [N, C, 1, L], a weight [O, C/g, k] is [O, C/g, 1, k]) or a global
    one ([N, C, H, W] as one row [N, C, 1, H·W]): every array of rank >= 2 viewed by ``plane_shape``,
    host (no copy, ``view``) or device (a C-contiguous reshape, also a view)."""

    def lift(a: Any) -> Any:
        if a is None or len(a.shape) < 2:
            return a
        shape = plane_shape(a.shape)
        return view(a, *shape) if isinstance(a, np.ndarray) else a.reshape(shape)

    return dataclasses.replace(
        b,
        attrs=attrs,
        x=[lift(a) for a in b.x],
        y=lift(b.y),
        p={k: lift(v) for k, v in b.p.items()},
        dp={k: lift(v) for k, v in b.dp.items()},
        saved={k: lift(v) for k, v in b.saved.items()},
        dy=lift(b.dy),
        dx=[lift(a) for a in b.dx],
    )


# -- device views ---------------------------------------------------------------------------------


def per_sample_cuda(a: Any) -> Any:
    """A [N, S] view of a C-contiguous batch device array."""
    return cuda_core.rows(a, a.size // a.shape[0])


# -- axis layouts ---------------------------------------------------------------------------------


def around_axis(a: Any, axis: int) -> tuple[int, int, int]:
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


def c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides of ``shape``, in elements."""
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return tuple(reversed(out))
