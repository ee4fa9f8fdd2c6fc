"""groupnorm kernels (also instancenorm's): per-(sample, group) normalisation of an [N, G, K, L] view.

Every input is viewed as [N, G, K, L] at bind time: G groups of K = C/G channels of L values each
(L = the numel of the axes after C). instancenorm is this with G = C (K = 1) plus running
statistics, so one compiled kernel serves both ops (``bind_groups_cpu``/``bind_groups_cuda``).

Forward, one (sample, group) row of K·L values per task, rows in parallel (prange over N·G; each
row's sums run in order in float64, so the result does not depend on the thread count): μ, σ²
(biased, two passes), saved mean = μ and invstd = 1/√(σ² + eps); then per channel c of the row
y = x·scale_c + shift_c with scale_c = invstd·w_c and shift_c = b_c - μ·scale_c. With running
statistics (``track``): in training, after the rows, each channel's running_mean and running_var
move towards the batch means of μ and of the unbiased σ²·L/(L-1) with ``momentum`` (PyTorch's
instance norm), σ² read back from the saved invstd in float64 (σ² = 1/invstd² - eps: no scratch);
in evaluation the running statistics are saved as mean and invstd and used instead. A fused
activation (``Binding.epilogue``, EPILOGUES_CPU) runs on each row right after it is written
(``_epilogue.act_inplace``, one call a row); rows shorter than ROW_MIN take one pass after the loop.

Backward with x̂ = (x - μ)·invstd and γ = dy·w_c per row: dx = invstd·(γ - mean(γ) - x̂·mean(γ·x̂))
on batch statistics, invstd·γ on running ones (constants); dw_c = Σ dy·x̂ and db_c = Σ dy over the
samples and the channel's L values, channels in parallel, samples in order (deterministic).

CUDA: one block per row for the statistics and y, and for dx (``cuda_core.block_sum``, float64,
fixed order); dw and db one block per channel; the running statistics one thread per channel over
the samples in order: deterministic, no atomics. The mode is read from ``b.state`` when the thunk
runs, as batchnorm's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import _epilogue as epilogue
from . import cuda_core
from ._epilogue import act_inplace
from .batchnorm1d import (  # numba's cache won't see edits there: clear it
    FAST,
    ROW_MIN,
    _inv_std_cuda,
    _moving_cuda,
    _norm_grad_cuda,
    inv_std,
    moving,
    norm_grad,
    row_moments,
)
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module

#: The activations forward_cpu applies to y itself (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU


@njit(cache=True)
def batch_means(mean, invstd, j, m, eps):
    """(the mean over the samples of channel j's μ, the same of its unbiased σ²·m/(m-1)), samples
    in order; σ² = 1/invstd² - eps, read back from the saved statistic in float64."""
    n = mean.shape[0]
    unbias = m / (m - 1) if m > 1 else 1.0
    sm = 0.0
    sv = 0.0
    for i in range(n):
        sm += mean[i, j]
        inv = np.float64(invstd[i, j])
        sv += (1 / (inv * inv) - eps) * unbias
    return sm / n, sv / n


@njit(cache=True, parallel=True, fastmath=FAST)
def forward_cpu(x, w, b, running_mean, running_var, mean, invstd, y, training, track, momentum, eps, act):
    n, g, k, l = x.shape
    m = k * l
    batch_stats = training[0] != 0 or not track
    for r in prange(n * g):
        i = r // g
        j = r - i * g
        xr, yr = x[i, j], y[i, j]  # [K, L] views: cheaper indexing, and the loops vectorize
        if batch_stats:
            # the row as one run (a view): one vectorized loop, not K short ones
            mu, var = row_moments(xr.reshape(m), m)
            mean[i, j] = mu
            invstd[i, j] = inv_std(var, eps)
        else:  # instancenorm in evaluation with running statistics: G = C
            mean[i, j] = running_mean[j]
            invstd[i, j] = inv_std(running_var[j], eps)
        mu_, inv_ = mean[i, j], invstd[i, j]  # as stored: the row loop in one precision
        for kk in range(k):
            c = j * k + kk
            scale = inv_ * w[c] if w.size else inv_
            shift = b[c] - mu_ * scale if b.size else -mu_ * scale
            xc, yc = xr[kk], yr[kk]
            for e in range(l):
                yc[e] = xc[e] * scale + shift
        if m >= ROW_MIN:  # the fused activation on the row just written (in cache), one call
            act_inplace(yr.reshape(m), 0, m, act)
    if m < ROW_MIN:  # short rows ([N, C] and few channels a group): one call over the whole output
        act_inplace(y.reshape(-1), 0, y.size, act)
    if track and training[0] != 0:
        for j in range(g):  # C values, N each: in order, deterministic
            mu_bar, var_bar = batch_means(mean, invstd, j, m, eps)
            running_mean[j] = moving(running_mean[j], mu_bar, momentum)
            running_var[j] = moving(running_var[j], var_bar, momentum)


@njit(cache=True, parallel=True, fastmath=FAST)
def backward_cpu(x, w, mean, invstd, dy, dx, dw, db, training, track, acc_dx):
    n, g, k, l = x.shape
    m = k * l
    batch_stats = training[0] != 0 or not track
    if dx.size:
        for r in prange(n * g):
            i = r // g
            j = r - i * g
            xr, dyr, dxr = x[i, j], dy[i, j], dx[i, j]
            mu, inv = mean[i, j], invstd[i, j]
            sg = 0.0
            sgx = 0.0
            if batch_stats:
                for kk in range(k):
                    c = j * k + kk
                    xc, dyc = xr[kk], dyr[kk]
                    for e in range(l):
                        t = dyc[e] * w[c] if w.size else dyc[e]
                        sg += t
                        sgx += t * (xc[e] - mu) * inv
            mg, mgx = sg / m, sgx / m  # 0 on running statistics: they are constants
            for kk in range(k):
                c = j * k + kk
                xc, dyc, dxc = xr[kk], dyr[kk], dxr[kk]
                for e in range(l):
                    t = norm_grad(dyc[e] * w[c] if w.size else dyc[e], (xc[e] - mu) * inv, inv, mg, mgx)
                    if acc_dx:
                        dxc[e] += t
                    else:
                        dxc[e] = t
    if dw.size or db.size:
        for c in prange(g * k):  # each task owns a channel; its sum runs over the samples in order
            j = c // k
            kk = c - j * k
            sw = 0.0
            sb = 0.0
            for i in range(n):
                mu, inv = mean[i, j], invstd[i, j]
                xc, dyc = x[i, j, kk], dy[i, j, kk]
                for e in range(l):
                    sw += dyc[e] * ((xc[e] - mu) * inv)
                    sb += dyc[e]
            if dw.size:
                dw[c] = sw
            if db.size:
                db[c] = sb


def _param_grads(b: Binding, empty: Any) -> tuple[Any, Any]:
    """(dw, db) of the binding, ``empty`` for each one nobody needs (no affine, or frozen)."""
    dw, db = b.dp.get("w"), b.dp.get("b")
    return (dw if dw is not None else empty), (db if db is not None else empty)


def _ngkl(b: Binding, groups: int) -> tuple[int, int, int, int]:
    """(N, G, K, L) of the binding's input with ``groups`` groups."""
    n, c = b.x[0].shape[:2]
    return n, groups, c // groups, b.x[0].size // (n * c)


def bind_groups_cpu(b: Binding, groups: int) -> tuple[Thunk, Thunk]:
    """The CPU thunks of a group normalisation with ``groups`` groups (groupnorm: num_groups;
    instancenorm: C). Running statistics are used where the binding has them."""
    shape = _ngkl(b, groups)
    dt = b.y.dtype
    empty = np.zeros(0, dt)

    def view(a: np.ndarray) -> np.ndarray:
        if not a.flags.c_contiguous:  # a reshape would copy, and the kernels would write the copy
            raise ValueError(f"{b.module}: kernel needs C-contiguous arrays, got strides {a.strides}")
        return a.reshape(shape)

    x, y = view(b.x[0]), view(b.y)
    w, bias = b.p.get("w", empty), b.p.get("b", empty)
    rm, rv = b.p.get("running_mean", empty), b.p.get("running_var", empty)
    track = "running_mean" in b.p
    mean, invstd = b.saved["mean"], b.saved["invstd"]
    training = b.state.training
    momentum, eps = float(b.attrs.get("momentum", 0.0)), float(b.attrs["eps"])
    act = epilogue.code(b)
    fwd = Launch(forward_cpu, x, w, bias, rm, rv, mean, invstd, y, training, track, momentum, eps, act)
    if b.dy is None:
        return fwd, nothing
    dy = view(b.dy)
    dx = view(b.dx[0]) if b.dx[0] is not None else np.zeros((0, 0, 0, 0), dt)
    dw, db = _param_grads(b, empty)
    return fwd, Launch(backward_cpu, x, w, mean, invstd, dy, dx, dw, db, training, track, bool(b.acc[0]))


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_groups_cpu(b, int(b.attrs["num_groups"]))


# -- CUDA -------------------------------------------------------------------------------------------

_batch_means_cuda = cuda.jit(device=True)(batch_means.py_func)


@cuda.jit
def forward_cuda(x, w, b, running_mean, running_var, mean, invstd, y, batch_stats, eps):
    # block r = (sample i, group j): the row's statistics (two passes, as the CPU), then y over it
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    g, k, ln = x.shape[1], x.shape[2], x.shape[3]
    i, j = r // g, r % g
    m = k * ln
    if batch_stats:
        s = 0.0
        for e in range(t, m, nt):
            s += x[i, j, e // ln, e % ln]
        mu = cuda_core.block_sum(buf, s) / m
        ss = 0.0
        for e in range(t, m, nt):
            d = x[i, j, e // ln, e % ln] - mu
            ss += d * d
        inv = _inv_std_cuda(cuda_core.block_sum(buf, ss) / m, eps)
    else:
        mu = np.float64(running_mean[j])
        inv = _inv_std_cuda(np.float64(running_var[j]), eps)
    if t == 0:
        mean[i, j] = mu
        invstd[i, j] = inv
    # scale and shift from the statistics as stored (the arrays' dtype), as the CPU reads them back
    mu_, inv_ = mean.dtype.type(mu), invstd.dtype.type(inv)
    for e in range(t, m, nt):
        kk, le = e // ln, e % ln
        c = j * k + kk
        scale = inv_ * w[c] if w.size else inv_
        shift = (b[c] if b.size else y.dtype.type(0)) - mu_ * scale
        y[i, j, kk, le] = x[i, j, kk, le] * scale + shift


@cuda.jit
def running_cuda(mean, invstd, running_mean, running_var, m, momentum, eps):
    # thread j: channel j's running statistics from the samples' μ and σ², samples in order
    j = cuda.grid(1)
    if j < running_mean.size:
        mu_bar, var_bar = _batch_means_cuda(mean, invstd, j, m, eps)
        running_mean[j] = _moving_cuda(running_mean[j], mu_bar, momentum)
        running_var[j] = _moving_cuda(running_var[j], var_bar, momentum)


@cuda.jit
def backward_cuda(x, w, mean, invstd, dy, dx, batch_stats, acc):
    # block r = (sample i, group j): dx of the row from its Σ γ and Σ γ·x̂ (γ = dy·w_c)
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    g, k, ln = x.shape[1], x.shape[2], x.shape[3]
    i, j = r // g, r % g
    m = k * ln
    mu, inv = mean[i, j], invstd[i, j]
    sg = 0.0
    sgx = 0.0
    for e in range(t, m, nt):
        kk, le = e // ln, e % ln
        v = dy[i, j, kk, le] * w[j * k + kk] if w.size else dy[i, j, kk, le]
        sg += v
        sgx += v * (x[i, j, kk, le] - mu) * inv
    zero = dx.dtype.type(0)
    mg = dx.dtype.type(cuda_core.block_sum(buf, sg) / m) if batch_stats else zero
    mgx = dx.dtype.type(cuda_core.block_sum(buf, sgx) / m) if batch_stats else zero
    for e in range(t, m, nt):
        kk, le = e // ln, e % ln
        v = dy[i, j, kk, le] * w[j * k + kk] if w.size else dy[i, j, kk, le]
        d = _norm_grad_cuda(v, (x[i, j, kk, le] - mu) * inv, inv, mg, mgx)
        if acc:
            dx[i, j, kk, le] += d
        else:
            dx[i, j, kk, le] = d


@cuda.jit
def param_grads_cuda(x, mean, invstd, dy, dw, db):
    # block c: dw_c = Σ dy·x̂ and db_c = Σ dy over the samples and the channel's values
    buf = cuda.shared.array(THREADS, np.float64)
    c, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    k, ln = x.shape[2], x.shape[3]
    j, kk = c // k, c % k
    sw = 0.0
    sb = 0.0
    for e in range(t, x.shape[0] * ln, nt):
        i, le = e // ln, e % ln
        d = dy[i, j, kk, le]
        sw += d * ((x[i, j, kk, le] - mean[i, j]) * invstd[i, j])
        sb += d
    hw = cuda_core.block_sum(buf, sw)
    hb = cuda_core.block_sum(buf, sb)
    if t == 0:
        if dw.size:
            dw[c] = hw
        if db.size:
            db[c] = hb


def bind_groups_cuda(b: Binding, groups: int) -> tuple[Thunk, Thunk]:
    """The CUDA thunks of a group normalisation with ``groups`` groups (as ``bind_groups_cpu``)."""
    n, g, k, ln = shape = _ngkl(b, groups)
    dt = b.y.dtype

    def view(a):  # [N, G, K, L] view of a C-contiguous device array
        return cuda_core.flat(a).reshape(shape)

    x, y = view(b.x[0]), view(b.y)
    empty = cuda_core.empty(dt)
    w, bias = b.p.get("w", empty), b.p.get("b", empty)
    rm, rv = b.p.get("running_mean", empty), b.p.get("running_var", empty)
    track = "running_mean" in b.p
    mean, invstd = b.saved["mean"], b.saved["invstd"]
    momentum, eps = float(b.attrs.get("momentum", 0.0)), float(b.attrs["eps"])
    threads = cuda_core.reduce_threads(k * ln)
    stat_grid = cuda_core.grid_1d(g)
    state = b.state

    def fwd() -> None:
        training = bool(state.training[0])  # read per call: the mode changes without rebinding
        forward_cuda[n * g, threads](x, w, bias, rm, rv, mean, invstd, y, training or not track, eps)
        if track and training:
            running_cuda[stat_grid](mean, invstd, rm, rv, k * ln, momentum, eps)

    if b.dy is None:
        return fwd, nothing
    dy = view(b.dy)
    dx = view(b.dx[0]) if b.dx[0] is not None else None
    dw, db = _param_grads(b, empty)
    acc = bool(b.acc[0])
    param_threads = cuda_core.reduce_threads(n * ln)

    def bwd() -> None:
        batch_stats = bool(state.training[0]) or not track
        if dx is not None:
            backward_cuda[n * g, threads](x, w, mean, invstd, dy, dx, batch_stats, acc)
        if dw.size or db.size:
            param_grads_cuda[g * k, param_threads](x, mean, invstd, dy, dw, db)

    return fwd, bwd


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_groups_cuda(b, int(b.attrs["num_groups"]))
