"""batchnorm1d kernels (also batchnorm2d's): per-channel normalisation of a [N, C, L] view.

Every batchnorm input is viewed as [N, C, L] at bind time ([N, C] → L = 1, [N, C, H, W] → L = H·W),
so one compiled kernel serves both ops. Channels are independent: the kernels run channels in
parallel (prange) with float64 accumulators per channel.

Training: μ, σ² (biased) over N·L; saved mean = μ and invstd = 1/√(σ² + eps); running_mean and
running_var move towards μ and the unbiased σ²·m/(m-1) (m = N·L) with ``momentum``, as PyTorch.
Eval: the running statistics are saved as mean and invstd and used instead.
Backward with x̂ = (x - μ)·invstd and g = Σ dy, h = Σ dy·x̂ per channel: db = g, dw = h;
dx = w·invstd·(dy - g/m - x̂·h/m) in training, w·invstd·dy in eval (statistics are constants).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..binding import Binding, Thunk, nothing

# reassociation lets the reductions vectorize; no nnan/ninf, so NaN and inf still propagate
FAST = {"reassoc", "nsz", "contract"}


@njit(cache=True)
def moving(old, new, momentum):
    return (1 - momentum) * old + momentum * new


@njit(cache=True)
def inv_std(var, eps):
    return 1 / math.sqrt(var + eps)


@njit(cache=True)
def norm_grad(dy, xhat, scale, mean_dy, mean_dy_xhat):
    """dx of a normalisation given the means of dy and dy·x̂ over the normalised set."""
    return scale * (dy - mean_dy - xhat * mean_dy_xhat)


@njit(cache=True, parallel=True, fastmath=FAST)
def forward_cpu(x, w, b, running_mean, running_var, mean, invstd, y, training, momentum, eps):
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
    fwd = lambda: forward_cpu(x, w, bias, rm, rv, mean, invstd, y, training, momentum, eps)  # noqa: E731
    if b.dy is None:
        return fwd, nothing
    dy = ncl(b.dy)
    dx = ncl(b.dx[0]) if b.dx[0] is not None else np.zeros((0, 0, 0), dt)
    dw = b.dp.get("w")
    db = b.dp.get("b")
    dw = dw if dw is not None else empty
    db = db if db is not None else empty
    acc = bool(b.acc[0])
    return fwd, lambda: backward_cpu(x, w, mean, invstd, dy, dx, dw, db, training, acc)
