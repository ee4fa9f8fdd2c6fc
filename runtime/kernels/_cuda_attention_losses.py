"""CUDA helpers of the pointwise losses (mse, l1, binary_cross_entropy): the binding of their
``bind_cuda``, twin of ``_losses_embed_common.bind_pointwise_loss``.

Each loss module gets its own two kernels from ``pointwise_loss_kernels``, closed over its own
scalar functions (a CUDA kernel cannot take a device function as an argument; a closure freezes it)
and named as the module's own, so ``tests/cuda/ptx_check.py`` finds them by module and name:

    forward_cuda(x, t, out, scale)   block b: out[b] = scale·Σ ℓ(x_i, t_i) over its grid-stride share,
                                     summed in float64 with ``_cuda.block_sum`` (fixed order)
    backward_cuda(x, t, dx, dt, g, acc_x, acc_t)   grid-stride: dx_i (+)= g·∂ℓ/∂x, dt_i (+)= g·∂ℓ/∂t;
                                     a size-0 dx or dt (``_cuda.empty``) is not needed

A loss over at most one block of threads is one launch writing the loss itself; a larger one writes
per-block partials that ``_cuda.device_sum`` reduces (one block): two launches, deterministic, no
atomics. The split depends on the element count only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from ..binding import Binding, Thunk, nothing
from . import _cuda
from ._cuda import THREADS  # a shared array's shape must be a global int of the kernel's module
from ._losses_embed_common import reduction_scale


def pointwise_loss_kernels(loss: Any, grad_x: Any, grad_t: Any, module: str) -> tuple[Any, Any]:
    """``forward_cuda`` and ``backward_cuda`` (see above) of a loss from its scalar functions."""
    loss_d, gx_d, gt_d = (cuda.jit(device=True)(f) for f in (loss, grad_x, grad_t))

    def forward_cuda(x, t, out, scale):
        # block b: out[b] = scale·Σ ℓ over its grid-stride share, in float64 like the CPU's sum
        buf = cuda.shared.array(THREADS, np.float64)
        s = 0.0
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            s += loss_d(x[i], t[i])
        total = _cuda.block_sum(buf, s)
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
    threads = _cuda.THREADS if n > _cuda.THREADS else _cuda.reduce_threads(n)
    return max(1, min(-(-n // threads), _cuda.REDUCE_BLOCKS)), threads


def bind_pointwise_loss_cuda(b: Binding, forward: Any, backward: Any) -> tuple[Thunk, Thunk]:
    """The thunks of a loss over two inputs of one shape, from its ``forward_cuda`` and
    ``backward_cuda`` kernels (see the module docstring), with g = weight·scale as on the CPU."""
    x, t, y = _cuda.flat(b.x[0]), _cuda.flat(b.x[1]), _cuda.flat(b.y)
    scale = reduction_scale(b, x.size)
    blocks, threads = loss_launch(x.size)
    if blocks == 1:

        def fwd() -> None:
            forward[1, threads](x, t, y, scale)

    else:
        partials = _cuda.new_partials()[:blocks]
        scratch = _cuda.new_partials()  # device_sum's own; one block of partials never touches it

        def fwd() -> None:
            forward[blocks, threads](x, t, partials, 1.0)
            _cuda.device_sum(partials, y, scratch, scale=scale)

    if b.dx[0] is None and b.dx[1] is None:
        return fwd, nothing
    g = x.dtype.type(b.weight * scale)  # the arrays' dtype, so float32 products stay float32
    dx = _cuda.flat(b.dx[0]) if b.dx[0] is not None else _cuda.empty(x.dtype)
    dt = _cuda.flat(b.dx[1]) if b.dx[1] is not None else _cuda.empty(x.dtype)
    acc_x, acc_t = bool(b.acc[0]), bool(b.acc[1])
    gblocks, gthreads = _cuda.grid_1d(x.size)

    def bwd() -> None:
        backward[gblocks, gthreads](x, t, dx, dt, g, acc_x, acc_t)

    return fwd, bwd
