"""cross_entropy kernels: softmax cross-entropy from logits over a class axis, with class weights,
an ignored label value and label smoothing (as PyTorch).

The logits are viewed as x[B, C, S] (``_losses.class_layout``: the class axis last is [rows, C, 1],
axis 1 is [N, C, positions]). Per row (label y, weights w, lse = log Σ exp x):
ℓ = (1 - ε)·w_y·(lse - x_y) + (ε/C)·Σ_c w_c·(lse - x_c); a row whose label is ``ignore_index``
gives 0 and weighs 0. Backward recomputes the row's max and Σ exp (the contract saves nothing but
the inputs) and writes dx_c = g·((a + ε·Σw/C)·exp(x_c - max)/Σ - a·[c = y] - ε·w_c/C), a = (1 - ε)·w_y,
with g divided by Σ w_y over the labels kept for "mean".

Rows run in parallel when the logits are large enough to pay for waking the threads; the
per-row losses then go to a private [R] array and are summed serially, so the loss does not
depend on the thread count. Labels outside [0, C) (other than ignore_index) raise ValueError after
the call.

On the GPU one block reduces each row (``cuda_core.block_max`` / ``block_sum``, fixed order) into a
per-row loss buffer (and one of the rows' weights) that ``cuda_core.device_sum`` then reduces:
deterministic, no atomics; "mean" divides on the device (``divide_cuda``), and backward sums the
weights again first (``row_weights_cuda``), so it does not rely on the forward's buffers. A bad label
cannot be raised from a kernel without a device-to-host copy every step, so the row's loss becomes
NaN (and its gradient skips the label term); the check registered in ``b.checks``, which the CUDA
executor runs when a loss comes back non-finite, finds the label on the host and raises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._ids import check_labels, checked, device_check, new_flag
from ._losses import class_attrs, class_layout, class_weight, label_weight_sum, mean_or_sum
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module

#: logits elements from which the row loops run in parallel: on 2 cores the parallel loops took
#: half the time from 256x100 logits up (exp is the cost: ~4 ns an element, numba has no vector exp)
PARALLEL_MIN = 1 << 14


@njit(cache=True)
def _max_sumexp(x, b, s):
    # exp(x_c - max) in the logits' dtype (float32 exp for float32), summed in float64
    m = x[b, 0, s]
    for c in range(1, x.shape[1]):
        m = max(m, x[b, c, s])
    t = 0.0
    for c in range(x.shape[1]):
        t += math.exp(x[b, c, s] - m)
    return m, t


@njit(cache=True)
def _row_loss(x, b, s, label, eps, w):
    m, t = _max_sumexp(x, b, s)
    lse = m + math.log(t)
    out = (1.0 - eps) * class_weight(w, label) * (lse - x[b, label, s])
    if eps != 0.0:
        u = 0.0
        for c in range(x.shape[1]):
            u += class_weight(w, c) * (lse - x[b, c, s])
        out += eps * u / x.shape[1]
    return out


@njit(cache=True)
def _row_grad(x, b, s, label, eps, w, smooth, g, dx, acc):
    # smooth = ε·Σw/C; an ignored row (label < 0 here) gets 0
    if label < 0 or label >= x.shape[1]:
        if not acc:
            for c in range(x.shape[1]):
                dx[b, c, s] = 0.0
        return
    m, t = _max_sumexp(x, b, s)
    a = (1.0 - eps) * class_weight(w, label)
    k = g * (a + smooth) / t
    off = g * eps / x.shape[1]
    for c in range(x.shape[1]):
        v = math.exp(x[b, c, s] - m) * k - off * class_weight(w, c)
        if acc:
            dx[b, c, s] += v
        else:
            dx[b, c, s] = v
    dx[b, label, s] -= g * a


@njit(cache=True)
def forward_cpu(x, labels, y, eps, w, ignore, mean, flag):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    total, n_pos = 0.0, x.shape[2]
    for r in range(labels.size):
        if labels[r] != ignore:
            total += _row_loss(x, r // n_pos, r % n_pos, labels[r], eps, w)
    y[0] = mean_or_sum(total, labels, w, ignore, mean)


@njit(cache=True, parallel=True)
def forward_cpu_parallel(x, labels, y, eps, w, ignore, mean, flag, rows):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    n_pos = x.shape[2]
    for r in prange(labels.size):
        rows[r] = 0.0 if labels[r] == ignore else _row_loss(x, r // n_pos, r % n_pos, labels[r], eps, w)
    total = 0.0
    for r in range(rows.size):  # serial: the same sum for any thread count
        total += rows[r]
    y[0] = mean_or_sum(total, labels, w, ignore, mean)


@njit(cache=True)
def _grad_scale(labels, w, ignore, g, mean):
    if not mean:
        return g
    den = label_weight_sum(labels, w, ignore)
    return g / den if den != 0.0 else math.nan


@njit(cache=True)
def backward_cpu(x, labels, dx, eps, w, smooth, ignore, g, mean, acc, flag):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    gg, n_pos = _grad_scale(labels, w, ignore, g, mean), x.shape[2]
    for r in range(labels.size):
        label = -1 if labels[r] == ignore else labels[r]
        _row_grad(x, r // n_pos, r % n_pos, label, eps, w, smooth, gg, dx, acc)


@njit(cache=True, parallel=True)
def backward_cpu_parallel(x, labels, dx, eps, w, smooth, ignore, g, mean, acc, flag):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    gg, n_pos = _grad_scale(labels, w, ignore, g, mean), x.shape[2]
    for r in prange(labels.size):
        label = -1 if labels[r] == ignore else labels[r]
        _row_grad(x, r // n_pos, r % n_pos, label, eps, w, smooth, gg, dx, acc)


def _smooth(eps: float, w: np.ndarray, c: int) -> float:
    # ε·Σw/C: the smoothing's share of the softmax term in the gradient
    return eps * (float(w.sum()) / c if w.size else 1.0)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    layout = class_layout(b)
    c = layout[1]
    x, labels, y = b.x[0].reshape(layout), b.x[1].reshape(-1), b.y.reshape(-1)
    eps = float(b.attrs["label_smoothing"])
    w, ignore, mean = class_attrs(b)
    flag = new_flag()
    where = f"cross_entropy '{b.module}'"
    if x.size >= PARALLEL_MIN:
        rows = np.zeros(labels.size, np.float64)
        args = (x, labels, y, eps, w, ignore, mean, flag, rows)
        fwd = checked(forward_cpu_parallel, args, flag, "label", where, c)
        bwd_kernel = backward_cpu_parallel
    else:
        fwd = checked(forward_cpu, (x, labels, y, eps, w, ignore, mean, flag), flag, "label", where, c)
        bwd_kernel = backward_cpu
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = b.dx[0].reshape(layout), bool(b.acc[0]), float(b.weight)
    args = (x, labels, dx, eps, w, _smooth(eps, w, c), ignore, g, mean, acc, flag)
    return fwd, checked(bwd_kernel, args, flag, "label", where, c)


@cuda.jit(device=True)
def class_weight_cuda(w, label):
    return w[label] if w.size else 1.0


@cuda.jit(device=True)
def _row_max_sumexp_cuda(buf, x, b, s):
    # (max, Σ exp(x - max)) of row (b, s), computed by the whole block
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    m = -math.inf
    for j in range(t, x.shape[1], nt):
        m = max(m, x[b, j, s])
    m = cuda_core.block_max(buf, m)
    e = 0.0
    for j in range(t, x.shape[1], nt):
        e += math.exp(x[b, j, s] - m)
    return m, cuda_core.block_sum(buf, e)


@cuda.jit
def forward_cuda(x, labels, eps, w, ignore, rows, rows_w):
    # block r: rows[r] = ℓ of row r (NaN for a label outside [0, C)), rows_w[r] = w_y (0 if ignored)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, c = cuda.blockIdx.x, cuda.threadIdx.x, x.shape[1]
    b, s, label = r // x.shape[2], r % x.shape[2], labels[r]
    if label == ignore:  # the whole block returns: no block_sum is left waiting
        if t == 0:
            rows[r], rows_w[r] = 0.0, 0.0
        return
    m, e = _row_max_sumexp_cuda(buf, x, b, s)
    lse = m + math.log(e)
    u = 0.0
    if eps != 0.0:
        for j in range(t, c, cuda.blockDim.x):
            u += class_weight_cuda(w, j) * (lse - x[b, j, s])
        u = eps * cuda_core.block_sum(buf, u) / c
    if t == 0:
        if label < 0 or label >= c:
            rows[r], rows_w[r] = math.nan, 0.0
        else:
            wy = class_weight_cuda(w, label)
            rows[r], rows_w[r] = (1.0 - eps) * wy * (lse - x[b, label, s]) + u, wy


@cuda.jit
def row_weights_cuda(labels, w, ignore, c, rows_w):
    # grid-stride: rows_w[r] = w_y, 0 for an ignored or bad label
    for r in range(cuda.grid(1), labels.size, cuda.gridsize(1)):
        label = labels[r]
        rows_w[r] = 0.0 if label == ignore or label < 0 or label >= c else class_weight_cuda(w, label)


@cuda.jit
def divide_cuda(y, den):
    # one thread: the "mean" (NaN over no weight, as PyTorch's 0/0)
    y[0] = y[0] / den[0] if den[0] != 0.0 else math.nan


@cuda.jit
def backward_cuda(x, labels, dx, eps, w, smooth, ignore, g, den, mean, acc):
    # block r: dx_r = g·((a + smooth)·softmax(x_r) - a·onehot(y) - ε·w/C), a = (1 - ε)·w_y
    buf = cuda.shared.array(THREADS, np.float64)
    r, c = cuda.blockIdx.x, x.shape[1]
    b, s, label = r // x.shape[2], r % x.shape[2], labels[r]
    gg = (g / den[0] if den[0] != 0.0 else math.nan) if mean else g
    if label == ignore:
        for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
            if not acc:
                dx[b, j, s] = 0.0
        return
    m, e = _row_max_sumexp_cuda(buf, x, b, s)
    a = (1.0 - eps) * class_weight_cuda(w, label) if 0 <= label < c else 0.0
    k = gg * (a + smooth) / e
    off = gg * eps / c
    for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
        v = math.exp(x[b, j, s] - m) * k - off * class_weight_cuda(w, j)
        if j == label:
            v -= gg * a
        if acc:
            dx[b, j, s] += v
        else:
            dx[b, j, s] = v


def class_views_cuda(b: Binding) -> tuple:
    """(x[B, C, S], flat labels, the class weights on the device, ignore_index, "mean") on the GPU."""
    layout = class_layout(b)
    w, ignore, mean = class_attrs(b)
    return cuda_core.flat(b.x[0]).reshape(*layout), cuda_core.flat(b.x[1]), cuda.to_device(w), ignore, mean


class ClassRowsCuda:
    """A class loss's per-row buffers on the GPU (allocated at bind time) and its reduction: the
    forward kernel writes each row's loss and label weight, ``reduce`` sums the losses into y and,
    for "mean", divides by the summed weights; ``denominator`` recomputes that sum for backward."""

    def __init__(self, labels: Any, w: Any, ignore: int, c: int, mean: bool) -> None:
        self.labels, self.w, self.ignore, self.c, self.mean = labels, w, ignore, c, mean
        n = labels.size
        self.rows, self.rows_w = cuda.device_array(n, np.float64), cuda.device_array(n, np.float64)
        self.den, self.partials = cuda.device_array(1, np.float64), cuda_core.new_partials()
        self.grid = cuda_core.grid_1d(n)

    def reduce(self, y: Any) -> None:
        cuda_core.device_sum(self.rows, y, self.partials)
        if self.mean:
            cuda_core.device_sum(self.rows_w, self.den, self.partials)
            divide_cuda[1, 1](y, self.den)

    def denominator(self) -> None:
        if self.mean:
            blocks, threads = self.grid
            row_weights_cuda[blocks, threads](self.labels, self.w, self.ignore, self.c, self.rows_w)
            cuda_core.device_sum(self.rows_w, self.den, self.partials)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, labels, w, ignore, mean = class_views_cuda(b)
    c, n_rows, y = x.shape[1], labels.size, cuda_core.flat(b.y)
    eps = float(b.attrs["label_smoothing"])
    threads = cuda_core.reduce_threads(c)
    rr = ClassRowsCuda(labels, w, ignore, c, mean)

    def fwd() -> None:
        forward_cuda[n_rows, threads](x, labels, eps, w, ignore, rr.rows, rr.rows_w)
        rr.reduce(y)

    b.checks.append(device_check(labels, c, "cross_entropy", b.module, "label", ignore))
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = cuda_core.flat(b.dx[0]).reshape(*x.shape), bool(b.acc[0]), float(b.weight)
    smooth = _smooth(eps, class_attrs(b)[0], c)

    def bwd() -> None:
        rr.denominator()
        backward_cuda[n_rows, threads](x, labels, dx, eps, w, smooth, ignore, g, rr.den, mean, acc)

    return fwd, bwd
