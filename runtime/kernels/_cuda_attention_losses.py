"""CUDA helpers of the pointwise losses (mse, l1, binary_cross_entropy): the binding of their
``bind_cuda``, twin of ``_losses_embed_common.bind_pointwise_loss``.

Each loss module keeps its own two kernels, built on its own scalar functions (a CUDA kernel cannot
take a device function as an argument, and ``tests/cuda/ptx_check.py`` finds kernels by module and
name):

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

from ..binding import Binding, Thunk, nothing
from . import _cuda
from ._losses_embed_common import reduction_scale


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
