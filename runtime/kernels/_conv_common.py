"""Helpers shared by the conv group's kernels: no-copy reshapes, pooling window geometry."""

from __future__ import annotations

import numpy as np
from numba import njit

from ...compiler.ops.base import Pool2d
from ..binding import Binding


def view(a: np.ndarray, *shape: int) -> np.ndarray:
    """a reshaped without copying (raises if it would copy: a kernel must write into the arena)."""
    v = a.view()
    v.shape = shape
    return v


def pool_geometry(b: Binding) -> tuple[int, ...]:
    """(H, W, kh, kw, sh, sw, ph, pw, Ho, Wo) of a pooling binding (stride default resolved)."""
    (kh, kw), (sh, sw), (ph, pw) = Pool2d.geometry(b.attrs)
    h, w = b.x[0].shape[2], b.x[0].shape[3]
    return (h, w, kh, kw, sh, sw, ph, pw, b.y.shape[2], b.y.shape[3])


@njit(cache=True)
def window(i, s, p, k, size):
    """[start, end) of output i's window along one axis, clipped to the unpadded input."""
    start = i * s - p
    return max(start, 0), min(start + k, size)
