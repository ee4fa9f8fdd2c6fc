"""conv_transpose2d kernels: conv2d's (runtime/kernels/conv2d.py), CPU and CUDA, bound on the
mirror conv2d (``compiler.ops.conv_transpose2d.mirror``: from [N, O, Ho, Wo] to [N, C, H, W], the
same weight) with the roles of its arrays exchanged; no convolution code of its own.

    forward        y  = mirror's input gradient with dy := x   (after y = bias: it adds into y)
    backward       dx = mirror's forward of dy                  (through a stage when dx adds up)
                   dW = mirror's weight gradient with x := dy and dy := x
                   db = Σ_{n, p} dy[n, o, p]

Each mirror binding gets the start of the workspace (the mirror's declared part) in turn; the
stage for an accumulated dx lies after it. conv2d picks its own algorithm (direct, im2col + GEMM,
by rows) for the mirror's shape, and the thunks are conv2d's Launches in a Seq (whole-step ready).
No activation is fused into it (it is no ``epilogue_producer``). Measured against PyTorch (2
threads each, medians of 21 alternated rounds, load 10.5-11, so only the ratio means much): the
U-Net's 32->16 2x2 stride-2 step at batch 32 on 7x7, forward 39.8 ms vs 92.1 ms, forward and
backward 115 vs 285 ms; 64->32 4x4 stride 2 padding 1 on 16x16 at batch 64, 68 vs 127 ms and 210
vs 372 ms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numba import njit, prange

from ...compiler.ops.base import TensorType
from ...compiler.ops.conv_transpose2d import OP as CONVT
from ...compiler.ops.conv_transpose2d import mirror
from ..binding import Binding, Thunk, nothing
from ..launch import Launch, Seq
from . import conv2d, cuda_core
from ._copies import copy_cpu
from ._views import flat, view

#: conv2d's kernels run numba-parallel loops over samples (``Binding.blas_threads``).
PARALLEL_CPU = conv2d.PARALLEL_CPU


@njit(cache=True, parallel=True)
def bias_fill_cpu(bias, y):
    # y[n, o, :] = bias[o] (y [N, O, P]), before the mirror's input gradient adds into y
    for s in prange(y.shape[0]):
        for o in range(y.shape[1]):
            y[s, o, :] = bias[o]


@njit(cache=True, parallel=True)
def bias_grad_cpu(dy, db):
    # db[o] = Σ_{n, p} dy[n, o, p] (dy [N, O, P]), summed in float64 in a fixed order
    for o in prange(dy.shape[1]):
        acc = 0.0
        for s in range(dy.shape[0]):
            d = dy[s, o]
            for p in range(d.size):
                acc += d[p]
        db[o] = acc


def _layout(b: Binding) -> tuple[dict[str, Any], int, Any]:
    """(mirror attributes, bytes of the mirror's workspace, the stage for an accumulated dx)."""
    x = b.x[0]
    n, dt = x.shape[0], np.dtype(b.p["w"].dtype)
    ins = [TensorType(tuple(x.shape[1:]))]
    m, _, _ = mirror(b.attrs, ins[0])
    size = CONVT.mirror_workspace(b.attrs, ins, n) * dt.itemsize // 4
    size = -(-size // dt.itemsize) * dt.itemsize
    stage = b.ws[size : size + x.size * dt.itemsize].view(dt).reshape(x.shape)
    return m, size, stage


def _mirror(b: Binding, m: dict[str, Any], ws_bytes: int, **arrays: Any) -> Binding:
    """The mirror conv2d's binding over ``arrays`` (x, y, dy, dx, dw, acc) and the workspace's start."""
    return dataclasses.replace(
        b,
        attrs=m,
        x=[arrays["x"]],
        y=arrays["y"],
        p={"w": b.p["w"]},
        dp={"w": arrays.get("dw")},
        saved={},
        dy=arrays.get("dy"),
        dx=[arrays.get("dx")],
        acc=[arrays.get("acc", False)],
        ws=b.ws[:ws_bytes],
        epilogue=None,
        epilogue_attrs={},
        epilogue_chain=[],
    )


def _bind(b: Binding, bind: Any) -> tuple[Any, Any, Any, Any, Any]:
    """The three mirror thunks, by ``bind`` (conv2d's bind_cpu or bind_cuda): (forward = the
    mirror's dx, dx = the mirror's forward or None, dW = the mirror's dW or None, the dx stage or
    None, whether y is preset to the bias)."""
    m, size, stage = _layout(b)
    x, y, bias = b.x[0], b.y, b.p.get("b")
    fwd = bind(_mirror(b, m, size, x=y, y=x, dy=x, dx=y, acc=bias is not None))[1]
    if b.dy is None:
        return fwd, None, None, None, bias is not None
    dx = b.dx[0]
    acc = dx is not None and bool(b.acc[0])
    dx_fwd = None if dx is None else bind(_mirror(b, m, size, x=b.dy, y=stage if acc else dx))[0]
    dw = b.dp.get("w")
    dw_bwd = None if dw is None else bind(_mirror(b, m, size, x=b.dy, y=x, dy=x, dw=dw))[1]
    return fwd, dx_fwd, dw_bwd, stage if acc else None, bias is not None


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    fwd, dx_fwd, dw_bwd, stage, has_bias = _bind(b, conv2d.bind_cpu)
    n, o = b.y.shape[0], b.y.shape[1]
    if has_bias:
        fwd = Seq(Launch(bias_fill_cpu, b.p["b"], view(b.y, n, o, -1)), fwd)
    if b.dy is None:
        return fwd, nothing
    steps: list[Thunk] = []
    db = b.dp.get("b")
    if db is not None:
        steps.append(Launch(bias_grad_cpu, view(b.dy, n, o, -1), db))
    if dx_fwd is not None:
        steps.append(dx_fwd)
        if stage is not None:
            steps.append(Launch(copy_cpu, flat(stage), flat(b.dx[0]), True))
    if dw_bwd is not None:
        steps.append(dw_bwd)
    return fwd, Seq(*steps)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    mfwd, dx_fwd, dw_bwd, stage, has_bias = _bind(b, conv2d.bind_cuda)
    n, o = b.y.shape[0], b.y.shape[1]
    y3 = b.y.reshape(n, o, b.y.size // (n * o))
    bias = b.p.get("b")
    fill = cuda_core.grid_1d(y3.size)

    def fwd() -> None:
        if has_bias:
            conv2d.bias_fill_cuda[fill](bias, y3)
        mfwd()

    if b.dy is None:
        return fwd, nothing
    dy3 = b.dy.reshape(n, o, b.dy.size // (n * o))
    db = b.dp.get("b")
    dx = None if stage is None else cuda_core.flat(b.dx[0])
    staged = None if stage is None else cuda_core.flat(stage)

    def bwd() -> None:
        if db is not None:
            conv2d.channel_sum(dy3, db)
        if dx_fwd is not None:
            dx_fwd()
            if staged is not None:
                cuda_core.copy(staged, dx, True)
        if dw_bwd is not None:
            dw_bwd()

    return fwd, bwd
