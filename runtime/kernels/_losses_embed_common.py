"""Helpers shared by the loss and embedding kernels: flat views, the reduction scale, the
binding of a pointwise loss, the batch-broadcast add and its gradients, and the out-of-range flag.

Numba's on-disk cache keys a kernel on its own source file only: after editing a jitted helper
here, clear the ``__pycache__`` of the kernels that call it. (Generic kernels that take the
scalar functions as arguments were tried and dropped: numba 0.68 refuses to cache a caller that
passes a dispatcher to a function writing into an array.)

Kernels cannot raise cheaply, so an op that reads integer ids or labels validates them in the
kernel and, on a bad one, writes ``flag = [1, value]`` into a small array bound once; the
Python closure checks ``flag[0]`` after the call and raises a ``ValueError`` naming the module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (never a copy: kernels write through it)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"kernel arrays must be C-contiguous, got strides {a.strides} for shape {a.shape}")
    return a.reshape(-1)


def as_rows(a: np.ndarray, cols: int) -> np.ndarray:
    """A 2-d [rows, cols] view of a C-contiguous array."""
    return flat(a).reshape(-1, cols)


def or_empty(a: np.ndarray | None, dtype: Any, ndim: int = 1) -> np.ndarray:
    """``a``, or an empty array of the same rank that the kernels read as "not needed"."""
    return a if a is not None else np.zeros((0,) * ndim, dtype)


def reduction_scale(b: Binding, count: int) -> float:
    """The factor that turns the sum of the per-element losses into the reduced loss."""
    return 1.0 / count if b.attrs["reduction"] == "mean" else 1.0


# -- out-of-range ids ----------------------------------------------------------------------------


def new_flag() -> np.ndarray:
    """[bad?, the first bad value]."""
    return np.zeros(2, np.int64)


@njit(cache=True)
def check_ids(ids, hi, flag):
    """Flag the first id outside [0, hi); True when all are valid. Serial, so the value reported
    does not depend on the thread count."""
    flag[0] = 0
    for i in range(ids.size):
        v = ids[i]
        if v < 0 or v >= hi:
            flag[0] = 1
            flag[1] = v
            return False
    return True


def checked(kernel: Callable, args: tuple, flag: np.ndarray, what: str, module: str, hi: int) -> Thunk:
    """A thunk calling ``kernel(*args)`` that raises if the kernel flagged an id."""

    def run() -> None:
        kernel(*args)
        if flag[0]:
            raise ValueError(f"{module}: {what} {int(flag[1])} out of range [0, {hi})")

    return run


# -- pointwise losses (mse, l1, binary_cross_entropy) -------------------------------------------


def bind_pointwise_loss(b: Binding, forward: Callable, backward: Callable) -> tuple[Thunk, Thunk]:
    """Bind a loss over two inputs of one shape: ``forward(x, t, y, scale)`` writes the reduced
    loss into y[0]; ``backward(x, t, dx, dt, g, acc_x, acc_t)`` writes g·∂ℓ/∂x and g·∂ℓ/∂t (an
    empty dx or dt is skipped), with g = weight·scale."""
    x, t, y = flat(b.x[0]), flat(b.x[1]), b.y.reshape(-1)
    scale = reduction_scale(b, x.size)
    g = x.dtype.type(b.weight * scale)  # in the arrays' dtype, so float32 loops stay float32
    dx = or_empty(None if b.dx[0] is None else flat(b.dx[0]), x.dtype)
    dt = or_empty(None if b.dx[1] is None else flat(b.dx[1]), x.dtype)
    acc_x, acc_t = bool(b.acc[0]), bool(b.acc[1])

    def fwd() -> None:
        forward(x, t, y, scale)

    def bwd() -> None:
        backward(x, t, dx, dt, g, acc_x, acc_t)

    return fwd, (bwd if dx.size or dt.size else nothing)


# -- per-sample tables broadcast over the batch (parameter, positional_encoding, cls_token) -------


@njit(cache=True)
def add_table(x, w, y):
    """y[n, :] = x[n, :] + w for every sample n (x, y: [N, S]; w: [S])."""
    for n in range(x.shape[0]):
        for s in range(x.shape[1]):
            y[n, s] = x[n, s] + w[s]


@njit(cache=True)
def pass_grad(dy, dx, acc):
    """dx = dy, or dx += dy when acc (2-d, any strides)."""
    for n in range(dy.shape[0]):
        if acc:
            for s in range(dy.shape[1]):
                dx[n, s] += dy[n, s]
        else:
            for s in range(dy.shape[1]):
                dx[n, s] = dy[n, s]


@njit(cache=True)
def batch_sum(dy, dw):
    """dw = Σ_n dy[n, :] (dy: [N, S], any strides; dw: [S])."""
    dw[:] = 0
    for n in range(dy.shape[0]):
        for s in range(dy.shape[1]):
            dw[s] += dy[n, s]


def per_sample(a: np.ndarray) -> np.ndarray:
    """A [N, S] view of a C-contiguous batch array."""
    return flat(a).reshape(a.shape[0], -1)


def bind_learned_table(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """The CPU thunks of an op that combines each sample with one learned vector ``w``
    (parameter, cls_token): ``forward(x, w, y)``, ``backward(dy, dx, dw, acc_dx)`` on
    per-sample [N, S] views, with an empty dx or dw where it is not needed."""
    x, y, w = per_sample(b.x[0]), per_sample(b.y), b.p["w"].reshape(-1)
    fwd = lambda: forward(x, w, y)  # noqa: E731
    dx = or_empty(None if b.dx[0] is None else per_sample(b.dx[0]), w.dtype, 2)
    dw = or_empty(None if b.dp.get("w") is None else b.dp["w"].reshape(-1), w.dtype)
    if not dx.size and not dw.size:
        return fwd, nothing
    dy, acc = per_sample(b.dy), bool(b.acc[0])
    return fwd, lambda: backward(dy, dx, dw, acc)
