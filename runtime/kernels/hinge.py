"""hinge kernels: multi-class margin loss, as torch.nn.MultiMarginLoss(p=1, margin).

Per row (logits x of C classes, label l): ℓ = Σ_{i≠l} max(0, margin - x_l + x_i) / C;
dx_i = g/C·[margin - x_l + x_i > 0] for i ≠ l and dx_l = -Σ of those. Labels outside [0, C)
raise ValueError after the call.

On the GPU one block takes each row: ``forward_cuda`` sums the row's violations with
``cuda_core.block_sum`` into a per-row float64 buffer that ``cuda_core.device_sum`` reduces (fixed order, no
atomics); ``backward_cuda`` writes the row's gradient and block-sums its count of violations for
dx_l. A kernel cannot raise, so a row with a label outside [0, C) gets a NaN loss and NaN gradients,
and the check registered in ``b.checks`` (run by the CUDA executor when a loss comes back
non-finite) finds the label on the host and raises, as ``cross_entropy`` does.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._ids import check_ids, checked, device_check, new_flag
from ._losses import reduction_scale
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module


# Plain Python so the CUDA backend can compile it with cuda.jit(device=True).
def margin_violation(margin, x_label, x_i):
    return margin - x_label + x_i


_violation = njit(cache=True)(margin_violation)


@njit(cache=True)
def forward_cpu(x, labels, y, margin, scale, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    s = 0.0
    for r in range(x.shape[0]):
        xl = x[r, labels[r]]
        for i in range(x.shape[1]):
            if i != labels[r]:
                s += max(_violation(margin, xl, x[r, i]), 0.0)
    y[0] = s * scale / x.shape[1]


@njit(cache=True)
def backward_cpu(x, labels, dx, margin, g, acc, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    gc = g / x.shape[1]
    for r in range(x.shape[0]):
        label = labels[r]
        xl = x[r, label]
        total = 0.0
        for i in range(x.shape[1]):
            v = gc if i != label and _violation(margin, xl, x[r, i]) > 0 else 0.0
            total += v
            if acc:
                dx[r, i] += v
            else:
                dx[r, i] = v
        dx[r, label] -= total


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x, labels, y = b.x[0], b.x[1], b.y.reshape(-1)
    margin = float(b.attrs["margin"])
    scale = reduction_scale(b, labels.size)
    flag = new_flag()
    where = f"hinge '{b.module}'"
    c = x.shape[1]
    fwd = checked(forward_cpu, (x, labels, y, margin, scale, flag), flag, "label", where, c)
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = b.dx[0], bool(b.acc[0]), b.weight * scale
    return fwd, checked(backward_cpu, (x, labels, dx, margin, g, acc, flag), flag, "label", where, c)


_violation_cuda = cuda.jit(device=True)(margin_violation)


@cuda.jit
def forward_cuda(x, labels, margin, rows):
    # block r: rows[r] = Σ_{i≠l} max(0, margin - x_l + x_i) (float64); NaN for a label outside [0, C)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, c = cuda.blockIdx.x, cuda.threadIdx.x, x.shape[1]
    label = labels[r]
    ok = label >= 0 and label < c  # the same in every thread: the block_sum below is reached by all
    s = 0.0
    if ok:
        xl = x[r, label]
        for i in range(t, c, cuda.blockDim.x):
            if i != label:
                s += max(_violation_cuda(margin, xl, x[r, i]), 0.0)
    s = cuda_core.block_sum(buf, s)
    if t == 0:
        rows[r] = s if ok else math.nan


@cuda.jit
def backward_cuda(x, labels, dx, margin, gc, acc):
    # block r: dx_i (+)= gc·[violation_i > 0] for i ≠ l, then dx_l -= Σ of those (gc = g/C)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, c = cuda.blockIdx.x, cuda.threadIdx.x, x.shape[1]
    label = labels[r]
    if label < 0 or label >= c:  # the whole block leaves together: no barrier is skipped by some
        for i in range(t, c, cuda.blockDim.x):
            dx[r, i] = math.nan
        return
    xl = x[r, label]
    total = 0.0
    for i in range(t, c, cuda.blockDim.x):
        v = gc if i != label and _violation_cuda(margin, xl, x[r, i]) > 0 else 0.0
        total += v
        if acc:
            dx[r, i] += v
        else:
            dx[r, i] = v
    total = cuda_core.block_sum(buf, total)  # its barrier also orders dx[r, label]'s write before the update
    if t == 0:
        dx[r, label] -= total


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    x, labels, y = b.x[0], cuda_core.flat(b.x[1]), cuda_core.flat(b.y)
    n_rows, c = x.shape
    margin = float(b.attrs["margin"])
    scale = reduction_scale(b, labels.size)
    threads = cuda_core.reduce_threads(c)
    row_loss = cuda.device_array(n_rows, np.float64)  # bind-time scratch
    partials = cuda_core.new_partials()

    def fwd() -> None:
        forward_cuda[n_rows, threads](x, labels, margin, row_loss)
        cuda_core.device_sum(row_loss, y, partials, scale=scale / c)

    b.checks.append(device_check(labels, c, "hinge", b.module, "label"))
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, gc = b.dx[0], bool(b.acc[0]), float(b.weight * scale / c)

    def bwd() -> None:
        backward_cuda[n_rows, threads](x, labels, dx, margin, gc, acc)

    return fwd, bwd
