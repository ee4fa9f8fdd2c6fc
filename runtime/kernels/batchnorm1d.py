"""batchnorm1d kernels (also batchnorm2d's): per-channel normalisation of a [N, C, L] view.

Every batchnorm input is viewed as [N, C, L] at bind time ([N, C] → L = 1, [N, C, H, W] → L = H·W),
so one compiled kernel serves both ops. Channels are independent: the kernels run channels in
parallel (prange) with float64 accumulators per channel.

Training: μ, σ² (biased) over N·L; saved mean = μ and invstd = 1/√(σ² + eps); running_mean and
running_var move towards μ and the unbiased σ²·m/(m-1) (m = N·L) with ``momentum``, as PyTorch.
Eval: the running statistics are saved as mean and invstd and used instead.
A fused activation (``Binding.epilogue``, EPILOGUES_CPU) is applied to each row of y right after
it is written (``_epilogue.act_inplace``), in the same pass.
Backward with x̂ = (x - μ)·invstd and g = Σ dy, h = Σ dy·x̂ per channel: db = g, dw = h;
dx = w·invstd·(dy - g/m - x̂·h/m) in training, w·invstd·dy in eval (statistics are constants).

CUDA: one block per channel does the channel's work in both directions: the sums over N·L are block
reductions (``cuda_core.block_sum``, float64, fixed order: deterministic, no atomics), thread 0 writes the
saved statistics and the running-statistics update (the CPU's ``moving`` and unbiased variance),
then every thread normalises its share. The mode is read from ``b.state`` when the thunk runs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import _epilogue as epilogue
from . import cuda_core
from ._epilogue import act_inplace
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module

#: The activations forward_cpu applies to y itself (``Binding.epilogue``).
EPILOGUES_CPU: frozenset[str] = epilogue.EPILOGUES_CPU

#: Rows (per sample and channel) from which the fused activation runs row by row; shorter ones
#: take one pass over the output after the loop (a call per value would cost more than the pass).
ROW_MIN = 16

# reassociation lets the reductions vectorize; no nnan/ninf, so NaN and inf still propagate
FAST = {"reassoc", "nsz", "contract"}


@njit(cache=True)
def moving(old, new, momentum):
    return (1 - momentum) * old + momentum * new


@njit(cache=True)
def inv_std(var, eps):
    return 1 / math.sqrt(var + eps)


# inline="always": inlined into the caller's loop before lowering, so the caller's fastmath flags
# let its two reductions vectorize (layernorm's and groupnorm's rows)
@njit(cache=True, inline="always")
def row_moments(xr, m):
    """(mean, biased variance) of the first m values of the 1-d run xr, two passes in float64."""
    s = 0.0
    for e in range(m):
        s += xr[e]
    mu = s / m
    ss = 0.0
    for e in range(m):
        d = xr[e] - mu
        ss += d * d
    return mu, ss / m


@njit(cache=True)
def norm_grad(dy, xhat, scale, mean_dy, mean_dy_xhat):
    """dx of a normalisation given the means of dy and dy·x̂ over the normalised set."""
    return scale * (dy - mean_dy - xhat * mean_dy_xhat)


@njit(cache=True, parallel=True, fastmath=FAST)
def forward_cpu(x, w, b, running_mean, running_var, mean, invstd, y, training, momentum, eps, act):
    n, c, l = x.shape
    m = n * l
    train = training[0] != 0
    for ch in prange(c):
        if train:
            s = 0.0
            for i in range(n):
                xr = x[i, ch]  # row views: cheaper indexing, and the loops vectorize
                for j in range(l):
                    s += xr[j]
            mu = s / m
            ss = 0.0
            for i in range(n):
                xr = x[i, ch]
                for j in range(l):
                    d = xr[j] - mu
                    ss += d * d
            var = ss / m
            mean[ch] = mu
            invstd[ch] = inv_std(var, eps)
            running_mean[ch] = moving(running_mean[ch], mu, momentum)
            running_var[ch] = moving(running_var[ch], var * m / (m - 1) if m > 1 else var, momentum)
        else:
            mean[ch] = running_mean[ch]
            invstd[ch] = inv_std(running_var[ch], eps)
        scale = invstd[ch] * w[ch] if w.size else invstd[ch]
        shift = (b[ch] if b.size else 0) - mean[ch] * scale
        for i in range(n):
            xr, yr = x[i, ch], y[i, ch]
            for j in range(l):
                yr[j] = xr[j] * scale + shift
            if l >= ROW_MIN:  # the fused activation on the row just written (in cache)
                act_inplace(yr, 0, l, act)
    if l < ROW_MIN:  # short rows ([N, C]: one value): one call over the whole (small) output
        act_inplace(y.reshape(-1), 0, y.size, act)


@njit(cache=True, parallel=True, fastmath=FAST)
def backward_cpu(x, w, mean, invstd, dy, dx, dw, db, training, acc_dx):
    n, c, l = x.shape
    m = n * l
    train = training[0] != 0
    for ch in prange(c):
        mu, inv = mean[ch], invstd[ch]
        g = 0.0
        h = 0.0
        for i in range(n):
            xr, dyr = x[i, ch], dy[i, ch]
            for j in range(l):
                g += dyr[j]
                h += dyr[j] * (xr[j] - mu) * inv
        if dw.size:
            dw[ch] = h
        if db.size:
            db[ch] = g
        if dx.size:
            scale = inv * w[ch] if w.size else inv
            mg, mh = (g / m, h / m) if train else (0.0, 0.0)
            for i in range(n):
                xr, dyr, dxr = x[i, ch], dy[i, ch], dx[i, ch]
                for j in range(l):
                    t = norm_grad(dyr[j], (xr[j] - mu) * inv, scale, mg, mh)
                    if acc_dx:
                        dxr[j] += t
                    else:
                        dxr[j] = t


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    n, c = b.x[0].shape[:2]
    dt = b.y.dtype
    empty = np.zeros(0, dt)

    def ncl(a: np.ndarray) -> np.ndarray:
        if not a.flags.c_contiguous:  # a reshape would copy, and the kernels would write the copy
            raise ValueError(f"{b.module}: kernel needs C-contiguous arrays, got strides {a.strides}")
        return a.reshape(n, c, -1)

    x, y = ncl(b.x[0]), ncl(b.y)
    w, bias = b.p.get("w", empty), b.p.get("b", empty)
    rm, rv = b.p["running_mean"], b.p["running_var"]
    mean, invstd = b.saved["mean"], b.saved["invstd"]
    training = b.state.training
    momentum, eps = float(b.attrs["momentum"]), float(b.attrs["eps"])
    act = epilogue.code(b)
    fwd = Launch(forward_cpu, x, w, bias, rm, rv, mean, invstd, y, training, momentum, eps, act)
    if b.dy is None:
        return fwd, nothing
    dy = ncl(b.dy)
    dx = ncl(b.dx[0]) if b.dx[0] is not None else np.zeros((0, 0, 0), dt)
    dw = b.dp.get("w")
    db = b.dp.get("b")
    dw = dw if dw is not None else empty
    db = db if db is not None else empty
    acc = bool(b.acc[0])
    return fwd, Launch(backward_cpu, x, w, mean, invstd, dy, dx, dw, db, training, acc)


# the scalar functions above, on the device
_moving_cuda = cuda.jit(device=True)(moving.py_func)
_inv_std_cuda = cuda.jit(device=True)(inv_std.py_func)
_norm_grad_cuda = cuda.jit(device=True)(norm_grad.py_func)


@cuda.jit
def forward_cuda(x, w, b, running_mean, running_var, mean, invstd, y, training, momentum, eps):
    # block ch: x, y [N, C, L]; statistics of channel ch, then y = x·scale + shift over it
    buf = cuda.shared.array(THREADS, np.float64)
    ch, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    ln = x.shape[2]
    m = x.shape[0] * ln
    if training:
        s = 0.0
        for e in range(t, m, nt):
            s += x[e // ln, ch, e % ln]
        mu = cuda_core.block_sum(buf, s) / m
        ss = 0.0
        for e in range(t, m, nt):  # two passes, as the CPU: no cancellation in E[x²] - μ²
            d = x[e // ln, ch, e % ln] - mu
            ss += d * d
        var = cuda_core.block_sum(buf, ss) / m
        inv = _inv_std_cuda(var, eps)
        if t == 0:
            mean[ch] = mu
            invstd[ch] = inv
            running_mean[ch] = _moving_cuda(running_mean[ch], mu, momentum)
            unbiased = var * m / (m - 1) if m > 1 else var
            running_var[ch] = _moving_cuda(running_var[ch], unbiased, momentum)
    else:
        mu = np.float64(running_mean[ch])
        inv = _inv_std_cuda(np.float64(running_var[ch]), eps)
        if t == 0:
            mean[ch] = mu
            invstd[ch] = inv
    # scale and shift from the statistics as stored (the arrays' dtype), as the CPU reads them back
    inv_t = mean.dtype.type(inv)
    scale = inv_t * w[ch] if w.size else inv_t
    shift = (b[ch] if b.size else y.dtype.type(0)) - mean.dtype.type(mu) * scale
    for e in range(t, m, nt):
        i, j = e // ln, e % ln
        y[i, ch, j] = x[i, ch, j] * scale + shift


@cuda.jit
def backward_cuda(x, w, mean, invstd, dy, dx, dw, db, training, acc):
    # block ch: g = Σ dy, h = Σ dy·x̂ over channel ch; db = g, dw = h; dx from norm_grad
    buf = cuda.shared.array(THREADS, np.float64)
    ch, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    ln = x.shape[2]
    m = x.shape[0] * ln
    mu, inv = mean[ch], invstd[ch]
    sg = 0.0
    sh = 0.0
    for e in range(t, m, nt):
        i, j = e // ln, e % ln
        d = dy[i, ch, j]
        sg += d
        sh += d * (x[i, ch, j] - mu) * inv
    g = cuda_core.block_sum(buf, sg)
    h = cuda_core.block_sum(buf, sh)
    if t == 0:
        if dw.size:
            dw[ch] = h
        if db.size:
            db[ch] = g
    if dx.size:
        scale = inv * w[ch] if w.size else inv
        zero = dx.dtype.type(0)
        mg = dx.dtype.type(g / m) if training else zero
        mh = dx.dtype.type(h / m) if training else zero
        for e in range(t, m, nt):
            i, j = e // ln, e % ln
            v = _norm_grad_cuda(dy[i, ch, j], (x[i, ch, j] - mu) * inv, scale, mg, mh)
            if acc:
                dx[i, ch, j] += v
            else:
                dx[i, ch, j] = v


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    n, c = b.x[0].shape[:2]
    dt = b.y.dtype

    def ncl(a):  # [N, C, L] view of a C-contiguous device array
        return cuda_core.flat(a).reshape(n, c, a.size // (n * c))

    x, y = ncl(b.x[0]), ncl(b.y)
    empty = cuda_core.empty(dt)
    w, bias = b.p.get("w", empty), b.p.get("b", empty)
    rm, rv = b.p["running_mean"], b.p["running_var"]
    mean, invstd = b.saved["mean"], b.saved["invstd"]
    momentum, eps = float(b.attrs["momentum"]), float(b.attrs["eps"])
    threads = cuda_core.reduce_threads(n * x.shape[2])
    state = b.state

    def fwd() -> None:
        training = bool(state.training[0])  # read per call: the mode changes without rebinding
        forward_cuda[c, threads](x, w, bias, rm, rv, mean, invstd, y, training, momentum, eps)

    if b.dy is None:
        return fwd, nothing
    dy = ncl(b.dy)
    dx = ncl(b.dx[0]) if b.dx[0] is not None else cuda_core.empty(dt, 3)
    dw, db = b.dp.get("w"), b.dp.get("b")
    dw = dw if dw is not None else empty
    db = db if db is not None else empty
    acc = bool(b.acc[0])

    def bwd() -> None:
        training = bool(state.training[0])
        backward_cuda[c, threads](x, w, mean, invstd, dy, dx, dw, db, training, acc)

    return fwd, bwd
