"""nll_loss kernels: ℓ = -w_y·x_y over log-probabilities x, with class weights and an ignored label
value (as PyTorch's nll_loss); "mean" divides by Σ w_y over the labels kept.

x is viewed as x[B, C, S] as cross_entropy's logits are (``_losses.class_layout``), label r being
row (r // S, r % S). Backward writes dx = 0 but -g·w_y at each kept label (or adds that with acc).
Labels outside [0, C) other than ignore_index raise ValueError after the call.

On the GPU a grid-stride kernel writes each row's loss and weight (NaN for a bad label, which the
executor's check then finds on the host, as cross_entropy's), ``cuda_core.device_sum`` reduces
them (deterministic, no atomics) and "mean" divides on the device; backward runs over every element
of dx after summing the weights again.
"""

from __future__ import annotations

import math

from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._ids import check_labels, checked, device_check, new_flag
from ._losses import class_attrs, class_layout, class_weight, label_weight_sum, mean_or_sum
from .cross_entropy import ClassRowsCuda, class_views_cuda, class_weight_cuda


@njit(cache=True)
def forward_cpu(x, labels, y, w, ignore, mean, flag):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    total, n_pos = 0.0, x.shape[2]
    for r in range(labels.size):
        label = labels[r]
        if label != ignore:
            total -= class_weight(w, label) * x[r // n_pos, label, r % n_pos]
    y[0] = mean_or_sum(total, labels, w, ignore, mean)


@njit(cache=True)
def backward_cpu(x, labels, dx, w, ignore, g, mean, acc, flag):
    if not check_labels(labels, x.shape[1], ignore, flag):
        return
    if mean:
        den = label_weight_sum(labels, w, ignore)
        g = g / den if den != 0.0 else math.nan
    if not acc:
        for b in range(dx.shape[0]):
            for c in range(dx.shape[1]):
                for s in range(dx.shape[2]):
                    dx[b, c, s] = 0.0
    n_pos = x.shape[2]
    for r in range(labels.size):
        label = labels[r]
        if label != ignore:
            dx[r // n_pos, label, r % n_pos] -= g * class_weight(w, label)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    layout = class_layout(b)
    c = layout[1]
    x, labels, y = b.x[0].reshape(layout), b.x[1].reshape(-1), b.y.reshape(-1)
    w, ignore, mean = class_attrs(b)
    flag = new_flag()
    where = f"nll_loss '{b.module}'"
    fwd = checked(forward_cpu, (x, labels, y, w, ignore, mean, flag), flag, "label", where, c)
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = b.dx[0].reshape(layout), bool(b.acc[0]), float(b.weight)
    return fwd, checked(backward_cpu, (x, labels, dx, w, ignore, g, mean, acc, flag), flag, "label", where, c)


@cuda.jit
def forward_cuda(x, labels, w, ignore, rows, rows_w):
    # grid-stride: rows[r] = -w_y·x_y (NaN for a bad label), rows_w[r] = w_y (0 if ignored or bad)
    c, n_pos = x.shape[1], x.shape[2]
    for r in range(cuda.grid(1), labels.size, cuda.gridsize(1)):
        label = labels[r]
        if label == ignore:
            rows[r], rows_w[r] = 0.0, 0.0
        elif label < 0 or label >= c:
            rows[r], rows_w[r] = math.nan, 0.0
        else:
            wy = class_weight_cuda(w, label)
            rows[r], rows_w[r] = -wy * x[r // n_pos, label, r % n_pos], wy


@cuda.jit
def backward_cuda(x, labels, dx, w, ignore, g, den, mean, acc):
    # grid-stride over dx[B, C, S]: -g·w_y at the label, 0 elsewhere
    c, n_pos = x.shape[1], x.shape[2]
    gg = (g / den[0] if den[0] != 0.0 else math.nan) if mean else g
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        b, j, s = i // (c * n_pos), (i // n_pos) % c, i % n_pos
        label = labels[b * n_pos + s]
        v = -gg * class_weight_cuda(w, label) if j == label and label != ignore else 0.0
        if acc:
            dx[b, j, s] += v
        else:
            dx[b, j, s] = v


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, labels, w, ignore, mean = class_views_cuda(b)
    c, y = x.shape[1], cuda_core.flat(b.y)
    rr = ClassRowsCuda(labels, w, ignore, c, mean)
    blocks, threads = rr.grid

    def fwd() -> None:
        forward_cuda[blocks, threads](x, labels, w, ignore, rr.rows, rr.rows_w)
        rr.reduce(y)

    b.checks.append(device_check(labels, c, "nll_loss", b.module, "label", ignore))
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = cuda_core.flat(b.dx[0]).reshape(*x.shape), bool(b.acc[0]), float(b.weight)
    dblocks, dthreads = cuda_core.grid_1d(x.size)

    def bwd() -> None:
        rr.denominator()
        backward_cuda[dblocks, dthreads](x, labels, dx, w, ignore, g, rr.den, mean, acc)

    return fwd, bwd
