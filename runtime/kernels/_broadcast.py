"""Broadcasting arithmetic, CPU and CUDA: y = a op b (op add, sub, mul or div) with NumPy's rule
over the per-sample axes, and each input's gradient summed over the axes it was broadcast along.

add, sub, mul and div bind here whenever their inputs' shapes differ (equal shapes keep add's and
mul's flat, threaded loops). At bind time ``layout`` drops the output's size-1 axes and merges
adjacent axes along which every input is either whole or broadcast alike ([C, 1, 1] against
[C, H, W] at batch N is [N·C, H·W], the bias at strides (1, 0)), then pads to ``RANK``.

CPU: the inputs are ``RANK``-d views of the flat arrays with zero strides on their broadcast axes
(never a copy), and one loop nest computes y; backward loops over dy the same way and adds each
term into the gradient through the same zero-stride view, in output order (serial: several output
elements add into one gradient element); where the gradient is broadcast along the innermost axis
(a [C, 1, 1] bias) each row is summed in a float64 local and added once (4x faster than adding
each term through memory). add with more inputs adds each further one into y.

CUDA: the shape and each operand's strides travel in a small int64 table (``meta``: rows shape,
a's strides, b's strides, y's strides) uploaded at bind time. Forward is one thread per output
element; backward one thread per gradient element, which sums its broadcast copies in float64 in
a fixed order (no atomics), so the result does not depend on the launch.

The scalar rules ``apply`` and ``grad`` are plain functions compiled for both targets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from ..launch import Launch, Seq
from . import _epilogue as epilogue
from . import cuda_core
from ._epilogue import act_inplace
from ._views import RANK, c_strides, flat

ADD, SUB, MUL, DIV = 0, 1, 2, 3  # the op codes the kernels branch on


def apply(op, a, b):  # y = a op b
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    return a / b


def grad(op, which, g, a, b):  # the gradient term of input ``which`` (0: a, 1: b), as PyTorch
    if op == ADD:
        return g
    if op == SUB:
        return g if which == 0 else -g
    if op == MUL:
        return g * b if which == 0 else g * a
    return g / b if which == 0 else -g * ((a / b) / b)


_apply = njit(cache=True, inline="always", error_model="numpy")(apply)
_grad = njit(cache=True, inline="always", error_model="numpy")(grad)


# -- layout ---------------------------------------------------------------------------------------


def layout(out: tuple[int, ...], ins: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """(merged output shape, each input's element strides on it: 0 where broadcast), both padded
    on the left to ``RANK``. Shapes include the batch axis, which stays first: the per-sample axes
    align on the right."""
    padded = [(s[0],) + (1,) * (len(out) - len(s)) + tuple(s[1:]) for s in ins]
    axes = [a for a in range(len(out)) if out[a] != 1]
    runs: list[list[int]] = []  # merged runs of axes
    for a in axes:
        key = tuple(p[a] == 1 for p in padded)
        if runs and tuple(p[runs[-1][0]] == 1 for p in padded) == key:
            runs[-1].append(a)
        else:
            runs.append([a])
    if len(runs) > RANK:
        raise NotImplementedError(f"broadcast of {ins} to {out} needs {len(runs)} axes; kernels take {RANK}")
    shape = (1,) * (RANK - len(runs)) + tuple(math.prod(out[a] for a in r) for r in runs)
    strides = []
    for p in padded:
        dims = (1,) * (RANK - len(runs)) + tuple(math.prod(p[a] for a in r) for r in runs)
        cs = c_strides(dims)
        strides.append(tuple(0 if d == 1 else s for d, s in zip(dims, cs, strict=True)))
    return shape, strides


# -- CPU ------------------------------------------------------------------------------------------


def _view(a: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """``a`` (C-contiguous) seen as ``shape`` with element ``strides`` (zero on broadcast axes)."""
    f = flat(a)
    return np.lib.stride_tricks.as_strided(f, shape, tuple(s * f.itemsize for s in strides))


@njit(cache=True, error_model="numpy")
def forward_cpu(a, b, y, op):  # RANK-d views; a and b with zero strides where broadcast
    s0, s1, s2, s3, s4, s5 = y.shape
    for i0 in range(s0):
        for i1 in range(s1):
            for i2 in range(s2):
                for i3 in range(s3):
                    for i4 in range(s4):
                        for i5 in range(s5):
                            y[i0, i1, i2, i3, i4, i5] = _apply(
                                op, a[i0, i1, i2, i3, i4, i5], b[i0, i1, i2, i3, i4, i5]
                            )


@njit(cache=True, error_model="numpy")
def backward_cpu(dy, a, b, dx, dx_flat, op, which, acc):  # dx: a zero-stride view of dx_flat
    if not acc:
        dx_flat[:] = 0.0
    s0, s1, s2, s3, s4, s5 = dy.shape
    inner_sum = dx.strides[5] == 0  # broadcast along the innermost axis: sum a row, add it once
    for i0 in range(s0):
        for i1 in range(s1):
            for i2 in range(s2):
                for i3 in range(s3):
                    for i4 in range(s4):
                        if inner_sum:
                            t = 0.0  # float64: a row's sum, one rounding into dx
                            for i5 in range(s5):
                                t += _grad(
                                    op,
                                    which,
                                    dy[i0, i1, i2, i3, i4, i5],
                                    a[i0, i1, i2, i3, i4, i5],
                                    b[i0, i1, i2, i3, i4, i5],
                                )
                            dx[i0, i1, i2, i3, i4, 0] += t
                            continue
                        for i5 in range(s5):
                            dx[i0, i1, i2, i3, i4, i5] += _grad(
                                op,
                                which,
                                dy[i0, i1, i2, i3, i4, i5],
                                a[i0, i1, i2, i3, i4, i5],
                                b[i0, i1, i2, i3, i4, i5],
                            )


def bind_cpu(b: Binding, op: int) -> tuple[Thunk, Thunk]:
    """Bind add (any number of inputs), sub, mul or div over broadcast views; a fused activation
    (``Binding.epilogue``) is applied to y after the sums."""
    shape, strides = layout(b.y.shape, [x.shape for x in b.x])
    xs = [_view(x, shape, s) for x, s in zip(b.x, strides, strict=True)]
    y = _view(b.y, shape, c_strides(shape))
    steps = [Launch(forward_cpu, xs[0], xs[1], y, op)]
    steps += [Launch(forward_cpu, y, x, y, op) for x in xs[2:]]  # add: y += x_k in input order
    act = epilogue.code(b)
    if act[0] != epilogue.NONE:
        steps.append(Launch(act_inplace, flat(b.y), 0, b.y.size, act))
    fwd = Seq(*steps) if len(steps) > 1 else steps[0]
    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = _view(b.dy, shape, c_strides(shape))
    a, bb = (xs[0], xs[1]) if op in (MUL, DIV) else (dy, dy)  # add and sub read no input
    grads = [
        Launch(backward_cpu, dy, a, bb, _view(g, shape, s), flat(g), op, min(k, 1), acc)
        for k, (g, s, acc) in enumerate(zip(b.dx, strides, b.acc, strict=True))
        if g is not None
    ]  # in input order: a gradient listed twice (x + x + c) accumulates
    return fwd, Seq(*grads) if len(grads) > 1 else grads[0]


# -- CUDA -----------------------------------------------------------------------------------------

_apply_cuda = cuda.jit(device=True)(apply)
_grad_cuda = cuda.jit(device=True)(grad)


@cuda.jit(device=True)
def _offsets(i, r, keep, meta):
    """Offsets into a, b and y of the output element whose kept axes (those where operand
    ``keep`` (1: a, 2: b, 0: every axis) is whole) count ``i`` and whose other axes count ``r``."""
    oa, ob, oy = 0, 0, 0
    for d in range(meta.shape[1] - 1, -1, -1):
        n = meta[0, d]
        if keep == 0 or meta[keep, d] != 0 or n == 1:
            k = i % n
            i //= n
        else:
            k = r % n
            r //= n
        oa += k * meta[1, d]
        ob += k * meta[2, d]
        oy += k * meta[3, d]
    return oa, ob, oy


@cuda.jit
def forward_cuda(a, b, y, meta, op):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        oa, ob, oy = _offsets(i, 0, 0, meta)
        y[oy] = _apply_cuda(op, a[oa], b[ob])


@cuda.jit
def backward_cuda(dy, a, b, dx, meta, op, which, acc):  # one thread per element of dx
    copies = dy.size // dx.size
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        s = 0.0  # float64: the broadcast copies sum with one rounding at the end
        for r in range(copies):
            oa, ob, oy = _offsets(j, r, which + 1, meta)
            s += _grad_cuda(op, which, dy[oy], a[oa], b[ob])
        if acc:
            dx[j] += s
        else:
            dx[j] = s


def _meta(shape: tuple[int, ...], sa: tuple[int, ...], sb: tuple[int, ...]) -> Any:
    return cuda.to_device(np.array([shape, sa, sb, c_strides(shape)], np.int64))


def bind_cuda(b: Binding, op: int) -> tuple[Thunk, Thunk]:
    """The device twin of ``bind_cpu`` (the executor applies a fused activation itself)."""
    shape, strides = layout(b.y.shape, [x.shape for x in b.x])
    xs, y = [cuda_core.flat(x) for x in b.x], cuda_core.flat(b.y)
    full = c_strides(shape)
    metas = [_meta(shape, strides[0], strides[1])] + [_meta(shape, full, s) for s in strides[2:]]
    blocks, threads = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[blocks, threads](xs[0], xs[1], y, metas[0], op)
        for x, m in zip(xs[2:], metas[1:], strict=True):
            forward_cuda[blocks, threads](y, x, y, m, op)

    if b.dy is None or all(g is None for g in b.dx):
        return fwd, nothing
    dy = cuda_core.flat(b.dy)
    a, bb = (xs[0], xs[1]) if op in (MUL, DIV) else (dy, dy)
    grads = []
    for k, (g, acc) in enumerate(zip(b.dx, b.acc, strict=True)):
        if g is not None:  # input k as operand b of a table whose a is whole (k >= 1), or as a
            m = metas[max(k - 1, 0)]  # the forward's table that reads input k (on the device once)
            grads.append((cuda_core.flat(g), m, min(k, 1), bool(acc), cuda_core.grid_1d(g.size)))

    def bwd() -> None:  # in input order: a gradient listed twice accumulates
        for dx, m, which, acc, (gb, gt) in grads:
            backward_cuda[gb, gt](dy, a, bb, dx, m, op, which, acc)

    return fwd, bwd
