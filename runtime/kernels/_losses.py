"""The losses' shared parts, CPU and CUDA: the reduction scale and the pointwise-loss binders.

``reduction_scale`` turns the sum of the per-element losses into the reduced loss. A pointwise loss
(mse, l1, binary_cross_entropy) defines its scalar functions ℓ(x, t), ∂ℓ/∂x and ∂ℓ/∂t; on the CPU
its own ``forward_cpu``/``backward_cpu`` loops call them (``bind_pointwise_loss`` binds them: own
copies, since numba's disk cache cannot cache a shared loop that takes the scalar functions as
arguments), and on the GPU ``pointwise_loss_kernels`` builds its two kernels, closed over those
functions (a CUDA kernel cannot take a device function as an argument; a closure freezes it) and
named as the module's own, so ``tests/cuda/ptx_check.py`` finds them by module and name:

    forward_cuda(x, t, out, scale)   block b: out[b] = scale·Σ ℓ(x_i, t_i) over its grid-stride share,
                                     summed in float64 with ``cuda_core.block_sum`` (fixed order)
    backward_cuda(x, t, dx, dt, g, acc_x, acc_t)   grid-stride: dx_i (+)= g·∂ℓ/∂x, dt_i (+)= g·∂ℓ/∂t;
                                     a size-0 dx or dt (``cuda_core.empty``) is not needed

A loss over at most one block of threads is one launch writing the loss itself; a larger one writes
per-block partials that ``cuda_core.device_sum`` reduces (one block): two launches, deterministic, no
atomics. The split depends on the element count only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import flat, or_empty
from .cuda_core import THREADS  # a shared array's shape must be a global int of the kernel's module


def reduction_scale(b: Binding, count: int) -> float:
    """The factor that turns the sum of the per-element losses into the reduced loss."""
    return 1.0 / count if b.attrs["reduction"] == "mean" else 1.0


# -- pointwise losses on the CPU (mse, l1, binary_cross_entropy) ------------------------------------


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
    fwd = Launch(forward, x, t, y, scale)
    return fwd, (Launch(backward, x, t, dx, dt, g, acc_x, acc_t) if dx.size or dt.size else nothing)


# -- pointwise losses on the GPU ----------------------------------------------------------------------


def pointwise_loss_kernels(loss: Any, grad_x: Any, grad_t: Any, module: str) -> tuple[Any, Any]:
    """``forward_cuda`` and ``backward_cuda`` (see above) of a loss from its scalar functions."""
    loss_d, gx_d, gt_d = (cuda.jit(device=True)(f) for f in (loss, grad_x, grad_t))

    def forward_cuda(x, t, out, scale):
        # block b: out[b] = scale·Σ ℓ over its grid-stride share, in float64 like the CPU's sum
        buf = cuda.shared.array(THREADS, np.float64)
        s = 0.0
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            s += loss_d(x[i], t[i])
        total = cuda_core.block_sum(buf, s)
        if cuda.threadIdx.x == 0:
            out[cuda.blockIdx.x] = scale * total

    def backward_cuda(x, t, dx, dt, g, acc_x, acc_t):
        # a size-0 dx or dt is not needed
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            if dx.size:
                v = g * gx_d(x[i], t[i])
                dx[i] = dx[i] + v if acc_x else v
            if dt.size:
                v = g * gt_d(x[i], t[i])
                dt[i] = dt[i] + v if acc_t else v

    for fn in (forward_cuda, backward_cuda):
        fn.__module__, fn.__qualname__ = module, fn.__name__
    return cuda.jit(forward_cuda), cuda.jit(backward_cuda)


def loss_launch(n: int) -> tuple[int, int]:
    """(blocks, threads) of a loss's first reduction pass over ``n`` elements: power-of-two blocks (as
    ``block_sum`` needs), at most ``REDUCE_BLOCKS`` of them so one block can add their partials."""
    threads = cuda_core.THREADS if n > cuda_core.THREADS else cuda_core.reduce_threads(n)
    return max(1, min(-(-n // threads), cuda_core.REDUCE_BLOCKS)), threads


def bind_pointwise_loss_cuda(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """The thunks of a loss over two inputs of one shape, from its ``forward_cuda`` and
    ``backward_cuda`` kernels (see the module docstring), with g = weight·scale as on the CPU."""
    x, t, y = cuda_core.flat(b.x[0]), cuda_core.flat(b.x[1]), cuda_core.flat(b.y)
    scale = reduction_scale(b, x.size)
    blocks, threads = loss_launch(x.size)
    if blocks == 1:

        def fwd() -> None:
            forward[1, threads](x, t, y, scale)

    else:
        partials = cuda_core.new_partials()[:blocks]
        scratch = cuda_core.new_partials()  # device_sum's own; one block of partials never touches it

        def fwd() -> None:
            forward[blocks, threads](x, t, partials, 1.0)
            cuda_core.device_sum(partials, y, scratch, scale=scale)

    if b.dx[0] is None and b.dx[1] is None:
        return fwd, nothing
    g = x.dtype.type(b.weight * scale)  # the arrays' dtype, so float32 products stay float32
    dx = cuda_core.flat(b.dx[0]) if b.dx[0] is not None else cuda_core.empty(x.dtype)
    dt = cuda_core.flat(b.dx[1]) if b.dx[1] is not None else cuda_core.empty(x.dtype)
    acc_x, acc_t = bool(b.acc[0]), bool(b.acc[1])
    gblocks, gthreads = cuda_core.grid_1d(x.size)

    def bwd() -> None:
        backward[gblocks, gthreads](x, t, dx, dt, g, acc_x, acc_t)

    return fwd, bwd
