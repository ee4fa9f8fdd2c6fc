"""cross_entropy kernels: softmax cross-entropy from logits, class axis last.

Per row r (logits x_r of C classes, label l): ℓ = lse(x_r) - Σ_c q_c x_c with
q = (1 - ε)·onehot(l) + ε/C, since Σ q = 1. Backward recomputes the row's max and Σ exp (the
contract saves nothing but the inputs) and writes dx_c = g·(exp(x_c - max) / Σ - q_c).

Rows run in parallel when the logits are large enough to pay for waking the threads; the
per-row losses then go to a private [R] array and are summed serially, so the loss does not
depend on the thread count. Labels outside [0, C) raise ValueError after the call.

On the GPU one block reduces each row (``cuda_core.block_max`` / ``block_sum``, fixed order) into a
per-row loss buffer that ``cuda_core.device_sum`` then reduces: deterministic, no atomics. A bad label
cannot be raised from a kernel without a device-to-host copy every step, so the row's loss becomes
NaN (and its gradient skips the label term); the check registered in ``b.checks``, which the CUDA
executor runs when a loss comes back non-finite, finds the label on the host and raises.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._ids import check_ids, checked, device_check, new_flag
from ._losses import reduction_scale
from ._views import as_rows, flat
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module

#: logits elements from which the row loops run in parallel: on 2 cores the parallel loops took
#: half the time from 256x100 logits up (exp is the cost: ~4 ns an element, numba has no vector exp)
PARALLEL_MIN = 1 << 14


@njit(cache=True)
def _max_sumexp(x):
    # exp(x_c - max) in the logits' dtype (float32 exp for float32), summed in float64
    m = x[0]
    for c in range(1, x.size):
        m = max(m, x[c])
    s = 0.0
    for c in range(x.size):
        s += math.exp(x[c] - m)
    return m, s


@njit(cache=True)
def _row_loss(x, label, eps):
    # lse - (1 - ε)·x_l - ε·mean(x)
    m, s = _max_sumexp(x)
    lin = (1.0 - eps) * x[label]
    if eps != 0.0:
        t = 0.0
        for c in range(x.size):
            t += x[c]
        lin += eps * t / x.size
    return m + math.log(s) - lin


@njit(cache=True)
def _row_grad(x, label, eps, g, dx, acc):
    m, s = _max_sumexp(x)
    gs = g / s
    off = g * eps / x.size
    for c in range(x.size):
        v = math.exp(x[c] - m) * gs - off
        if acc:
            dx[c] += v
        else:
            dx[c] = v
    dx[label] -= g * (1.0 - eps)


@njit(cache=True)
def forward_cpu(x, labels, y, eps, scale, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    s = 0.0
    for r in range(x.shape[0]):
        s += _row_loss(x[r], labels[r], eps)
    y[0] = s * scale


@njit(cache=True, parallel=True)
def forward_cpu_parallel(x, labels, y, eps, scale, flag, rows):
    if not check_ids(labels, x.shape[1], flag):
        return
    for r in prange(x.shape[0]):
        rows[r] = _row_loss(x[r], labels[r], eps)
    s = 0.0
    for r in range(rows.size):  # serial: the same sum for any thread count
        s += rows[r]
    y[0] = s * scale


@njit(cache=True)
def backward_cpu(x, labels, dx, eps, g, acc, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    for r in range(x.shape[0]):
        _row_grad(x[r], labels[r], eps, g, dx[r], acc)


@njit(cache=True, parallel=True)
def backward_cpu_parallel(x, labels, dx, eps, g, acc, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    for r in prange(x.shape[0]):
        _row_grad(x[r], labels[r], eps, g, dx[r], acc)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    c = b.x[0].shape[-1]
    x, labels, y = as_rows(b.x[0], c), flat(b.x[1]), b.y.reshape(-1)
    eps = float(b.attrs["label_smoothing"])
    scale = reduction_scale(b, labels.size)
    g = x.dtype.type(b.weight * scale)
    flag = new_flag()
    where = f"cross_entropy '{b.module}'"
    if x.size >= PARALLEL_MIN:
        rows = np.zeros(x.shape[0], np.float64)
        fwd = checked(forward_cpu_parallel, (x, labels, y, eps, scale, flag, rows), flag, "label", where, c)
        bwd_kernel = backward_cpu_parallel
    else:
        fwd = checked(forward_cpu, (x, labels, y, eps, scale, flag), flag, "label", where, c)
        bwd_kernel = backward_cpu
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc = as_rows(b.dx[0], c), bool(b.acc[0])
    return fwd, checked(bwd_kernel, (x, labels, dx, eps, g, acc, flag), flag, "label", where, c)


@cuda.jit(device=True)
def _row_max_sumexp_cuda(buf, x, r):
    # (max, Σ exp(x - max)) of row r, computed by the whole block
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    m = -math.inf
    for j in range(t, x.shape[1], nt):
        m = max(m, x[r, j])
    m = cuda_core.block_max(buf, m)
    s = 0.0
    for j in range(t, x.shape[1], nt):
        s += math.exp(x[r, j] - m)
    return m, cuda_core.block_sum(buf, s)


@cuda.jit
def forward_cuda(x, labels, eps, rows):
    # block r: rows[r] = lse(x_r) - (1 - ε)·x_r[label] - ε·mean(x_r); NaN for a label outside [0, C)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, c = cuda.blockIdx.x, cuda.threadIdx.x, x.shape[1]
    m, s = _row_max_sumexp_cuda(buf, x, r)
    lin = 0.0
    if eps != 0.0:
        for j in range(t, c, cuda.blockDim.x):
            lin += x[r, j]
        lin = eps * cuda_core.block_sum(buf, lin) / c
    if t == 0:
        label = labels[r]
        if label < 0 or label >= c:
            rows[r] = math.nan
        else:
            rows[r] = m + math.log(s) - (1.0 - eps) * x[r, label] - lin


@cuda.jit
def backward_cuda(x, labels, dx, eps, g, acc):
    # block r: dx_r = g·(softmax(x_r) - q_r), q = (1 - ε)·onehot(label) + ε/C
    buf = cuda.shared.array(THREADS, np.float64)
    r, c = cuda.blockIdx.x, x.shape[1]
    m, s = _row_max_sumexp_cuda(buf, x, r)
    gs = g / s
    off = g * eps / c
    label = labels[r]
    for j in range(cuda.threadIdx.x, c, cuda.blockDim.x):
        v = math.exp(x[r, j] - m) * gs - off
        if j == label:
            v -= g * (1.0 - eps)
        if acc:
            dx[r, j] += v
        else:
            dx[r, j] = v


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    c = b.x[0].shape[b.x[0].ndim - 1]  # the simulator refuses shape[-1]
    x, labels, y = cuda_core.rows(b.x[0], c), cuda_core.flat(b.x[1]), cuda_core.flat(b.y)
    n_rows = x.shape[0]
    eps = float(b.attrs["label_smoothing"])
    scale = reduction_scale(b, labels.size)
    g = float(b.weight * scale)
    threads = cuda_core.reduce_threads(c)
    row_loss = cuda.device_array(n_rows, np.float64)  # bind-time scratch, like the CPU's `rows`
    partials = cuda_core.new_partials()

    def fwd() -> None:
        forward_cuda[n_rows, threads](x, labels, eps, row_loss)
        cuda_core.device_sum(row_loss, y, partials, scale=scale)

    b.checks.append(device_check(labels, c, "cross_entropy", b.module, "label"))
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc = cuda_core.rows(b.dx[0], c), bool(b.acc[0])

    def bwd() -> None:
        backward_cuda[n_rows, threads](x, labels, dx, eps, g, acc)

    return fwd, bwd
