"""The losses' shared parts, CPU and CUDA: the reduction scale and the pointwise-loss binders.

``reduction_scale`` turns the sum of the per-element losses into the reduced loss. A pointwise loss
(mse, l1, smooth_l1, binary_cross_entropy) defines its scalar functions ℓ(x, t), ∂ℓ/∂x and ∂ℓ/∂t; on the CPU
its own ``forward_cpu``/``backward_cpu`` loops call them (``bind_pointwise_loss`` binds them: own
copies, since numba's disk cache cannot cache a shared loop that takes the scalar functions as
arguments), and on the GPU ``pointwise_loss_kernels`` builds its two kernels, closed over those
functions (a CUDA kernel cannot take a device function as an argument; a closure freezes it) and
named as the module's own, so ``tests/cuda/ptx_check.py`` finds them by module and name:

    forward_cuda(x, t, out, scale, p)   block b: out[b] = scale·Σ ℓ(x_i, t_i) over its grid-stride
                                     share, summed in float64 with ``cuda_core.block_sum`` (fixed order)
    backward_cuda(x, t, dx, dt, g, acc_x, acc_t, p)   grid-stride: dx_i (+)= g·∂ℓ/∂x, dt_i (+)= g·∂ℓ/∂t;
                                     a size-0 dx or dt (``cuda_core.empty``) is not needed

``p`` is the loss's one scalar attribute (smooth_l1's β), passed to its scalar functions as a third
argument; a loss without one (``param=False``) gets its two-argument functions wrapped, and p = 0.

A loss over at most one block of threads is one launch writing the loss itself; a larger one writes
per-block partials that ``cuda_core.device_sum`` reduces (one block): two launches, deterministic, no
atomics. The split depends on the element count only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import flat, or_empty
from .cuda_core import THREADS  # a shared array's shape must be a global int of the kernel's module


def reduction_scale(b: Binding, count: int) -> float:
    """The factor that turns the sum of the per-element losses into the reduced loss."""
    return 1.0 / count if b.attrs["reduction"] == "mean" else 1.0


# -- pointwise losses on the CPU (mse, l1, smooth_l1, binary_cross_entropy) -----------------------


def bind_pointwise_loss(
    b: Binding, forward: Callable, backward: Callable, *extra: Any
) -> tuple[Thunk, Thunk]:
    """Bind a loss over two inputs of one shape: ``forward(x, t, y, scale, *extra)`` writes the
    reduced loss into y[0]; ``backward(x, t, dx, dt, g, acc_x, acc_t, *extra)`` writes g·∂ℓ/∂x and
    g·∂ℓ/∂t (an empty dx or dt is skipped), with g = weight·scale. ``extra`` are the loss's own
    scalar attributes (smooth_l1's β)."""
    x, t, y = flat(b.x[0]), flat(b.x[1]), b.y.reshape(-1)
    scale = reduction_scale(b, x.size)
    g = x.dtype.type(b.weight * scale)  # in the arrays' dtype, so float32 loops stay float32
    dx = or_empty(None if b.dx[0] is None else flat(b.dx[0]), x.dtype)
    dt = or_empty(None if b.dx[1] is None else flat(b.dx[1]), x.dtype)
    acc_x, acc_t = bool(b.acc[0]), bool(b.acc[1])
    fwd = Launch(forward, x, t, y, scale, *extra)
    return fwd, (Launch(backward, x, t, dx, dt, g, acc_x, acc_t, *extra) if dx.size or dt.size else nothing)


# -- pointwise losses on the GPU ----------------------------------------------------------------------


def pointwise_loss_kernels(
    loss: Any, grad_x: Any, grad_t: Any, module: str, param: bool = False
) -> tuple[Any, Any]:
    """``forward_cuda`` and ``backward_cuda`` (see above) of a loss from its scalar functions, which
    take (x, t, p) when ``param``, else (x, t)."""
    loss_d, gx_d, gt_d = (cuda.jit(device=True)(f if param else _ignore_p(f)) for f in (loss, grad_x, grad_t))

    def forward_cuda(x, t, out, scale, p):
        # block b: out[b] = scale·Σ ℓ over its grid-stride share, in float64 like the CPU's sum
        buf = cuda.shared.array(THREADS, np.float64)
        s = 0.0
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            s += loss_d(x[i], t[i], p)
        total = cuda_core.block_sum(buf, s)
        if cuda.threadIdx.x == 0:
            out[cuda.blockIdx.x] = scale * total

    def backward_cuda(x, t, dx, dt, g, acc_x, acc_t, p):
        # a size-0 dx or dt is not needed
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            if dx.size:
                v = g * gx_d(x[i], t[i], p)
                dx[i] = dx[i] + v if acc_x else v
            if dt.size:
                v = g * gt_d(x[i], t[i], p)
                dt[i] = dt[i] + v if acc_t else v

    for fn in (forward_cuda, backward_cuda):
        fn.__module__, fn.__qualname__ = module, fn.__name__
    return cuda.jit(forward_cuda), cuda.jit(backward_cuda)


def _ignore_p(f: Callable) -> Any:
    # a two-argument scalar function as a device function of (x, t, p), so one kernel fits all
    f_d = cuda.jit(device=True)(f)

    def with_p(x, t, p):
        return f_d(x, t)

    return with_p


def loss_launch(n: int) -> tuple[int, int]:
    """(blocks, threads) of a loss's first reduction pass over ``n`` elements: power-of-two blocks (as
    ``block_sum`` needs), at most ``REDUCE_BLOCKS`` of them so one block can add their partials."""
    threads = cuda_core.THREADS if n > cuda_core.THREADS else cuda_core.reduce_threads(n)
    return max(1, min(-(-n // threads), cuda_core.REDUCE_BLOCKS)), threads


def bind_pointwise_loss_cuda(b: Binding, forward: Any, backward: Any, p: float = 0.0) -> tuple[Thunk, Thunk]:
    """The thunks of a loss over two inputs of one shape, from its ``forward_cuda`` and
    ``backward_cuda`` kernels (see the module docstring), with g = weight·scale as on the CPU and
    the loss's scalar attribute ``p``."""
    x, t, y = cuda_core.flat(b.x[0]), cuda_core.flat(b.x[1]), cuda_core.flat(b.y)
    scale = reduction_scale(b, x.size)
    blocks, threads = loss_launch(x.size)
    if blocks == 1:

        def fwd() -> None:
            forward[1, threads](x, t, y, scale, p)

    else:
        partials = cuda_core.new_partials()[:blocks]
        scratch = cuda_core.new_partials()  # device_sum's own; one block of partials never touches it

        def fwd() -> None:
            forward[blocks, threads](x, t, partials, 1.0, p)
            cuda_core.device_sum(partials, y, scratch, scale=scale)

    if b.dx[0] is None and b.dx[1] is None:
        return fwd, nothing
    g = x.dtype.type(b.weight * scale)  # the arrays' dtype, so float32 products stay float32
    dx = cuda_core.flat(b.dx[0]) if b.dx[0] is not None else cuda_core.empty(x.dtype)
    dt = cuda_core.flat(b.dx[1]) if b.dx[1] is not None else cuda_core.empty(x.dtype)
    acc_x, acc_t = bool(b.acc[0]), bool(b.acc[1])
    gblocks, gthreads = cuda_core.grid_1d(x.size)

    def bwd() -> None:
        backward[gblocks, gthreads](x, t, dx, dt, g, acc_x, acc_t, p)

    return fwd, bwd


# -- class losses over a class axis (cross_entropy, nll_loss) -----------------------------------------
#
# The logits are viewed as x[B, C, S]: the class axis last is [rows, C, 1], the class axis 1 is
# [N, C, positions]; label r (flat) is the row (r // S, r % S). w holds the class weights in float64,
# size 0 for none. A label equal to ``ignore`` contributes nothing; "mean" divides by the sum of the
# weights of the labels not ignored (``label_weight_sum``), which depends on the labels, so it is
# computed in each call rather than at bind time.


@njit(cache=True)
def class_weight(w, label):
    """w[label], or 1 without class weights."""
    return w[label] if w.size else 1.0


@njit(cache=True)
def label_weight_sum(labels, w, ignore):
    """Σ w_y over the labels not ignored: what "mean" divides by."""
    s = 0.0
    for r in range(labels.size):
        if labels[r] != ignore:
            s += class_weight(w, labels[r])
    return s


@njit(cache=True)
def mean_or_sum(total, labels, w, ignore, mean):
    """The reduced loss from the sum of ℓ: NaN for a "mean" over no weight, as PyTorch's 0/0."""
    if not mean:
        return total
    den = label_weight_sum(labels, w, ignore)
    return total / den if den != 0.0 else math.nan


def class_layout(b: Binding) -> tuple[int, int, int]:
    """(B, C, S) of the x[B, C, S] view of input 0 (see above)."""
    shape = b.x[0].shape
    c = shape[len(shape) - 1] if b.attrs["axis"] == -1 else shape[1]  # the simulator refuses shape[-1]
    if b.attrs["axis"] == -1:
        return b.x[0].size // c, c, 1
    return shape[0], c, b.x[0].size // (shape[0] * c)


def class_attrs(b: Binding) -> tuple[np.ndarray, int, bool]:
    """(w: the class weights in float64, size 0 for none; ignore_index; whether "mean")."""
    w = b.attrs["class_weights"]
    return (
        np.asarray(w if w is not None else [], np.float64),
        int(b.attrs["ignore_index"]),
        b.attrs["reduction"] == "mean",
    )
