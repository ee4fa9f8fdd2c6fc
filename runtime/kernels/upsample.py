"""upsample kernels, CPU and CUDA: one pair for both modes, driven by per-axis tables built at bind
time (``axis_table``): for output row i the source rows idx[k, i] and weights lam[k, i], k < taps
(nearest: one tap of weight 1; bilinear: floor(src) and the next row, weights 1 - λ and λ), and
the same for columns. PyTorch's float rounding of the scale, of nearest's source index (float32
whatever the dtype) and of bilinear's source coordinate (the tensor's dtype) is reproduced there,
so the outputs pick the same cells as torch.nn.functional.interpolate.

    forward   y[p, i, j]  = Σ_k lam_h[k, i] · Σ_m lam_w[m, j] · x[p, idx_h[k, i], idx_w[m, j]]
    backward  dx[p, r, :] (+)= the same taps scattered back, by output row i, tap k, column j, tap m

The CPU threads over planes p = (n, c); on the GPU one thread per output cell forward, and one per
input row (p, r) backward, which gathers the output rows whose taps read r in the CPU's order: no
atomics, and each input cell sums its taps in the same order on both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda, njit, prange

from ...compiler.ops.upsample import scales
from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._views import view


def axis_table(n_in: int, n_out: int, scale: float | None, attrs: dict[str, Any], dtype: Any) -> tuple:
    """(idx [taps, n_out] int64, lam [taps, n_out] dtype) of one axis, as ATen computes them
    (UpSample.h: nearest_idx, area_pixel_compute_source_index, guard_index_and_lambda)."""
    i = np.arange(n_out)
    if attrs["mode"] == "nearest":
        if n_out == n_in:
            src = i
        elif n_out == 2 * n_in:
            src = i >> 1
        else:  # ATen's scale and product are float32 here, for every dtype
            r = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
            src = np.minimum(np.floor(i.astype(np.float32) * r).astype(np.int64), n_in - 1)
        return src[None].astype(np.int64), np.ones((1, n_out), dtype)
    f = np.dtype(dtype).type  # bilinear computes in the tensor's dtype (opmath of float is float)
    if attrs["align_corners"]:
        r = f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
        src = r * i.astype(dtype)
    else:
        r = f(1.0 / scale) if scale else f(n_in) / f(n_out)
        src = np.maximum(r * (i.astype(dtype) + f(0.5)) - f(0.5), f(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    i1 = i0 + (i0 < n_in - 1)
    return np.stack([i0, i1]), np.stack([f(1) - lam, lam]).astype(dtype)


def tables(b: Binding, dtype: Any) -> tuple:
    """(idx_h, lam_h, idx_w, lam_w) of a binding."""
    (h, w), (ho, wo) = b.x[0].shape[2:], b.y.shape[2:]
    sf = scales(b.attrs) or (None, None)
    return (*axis_table(h, ho, sf[0], b.attrs, dtype), *axis_table(w, wo, sf[1], b.attrs, dtype))


def planes(a: Any) -> tuple[int, int, int]:
    """[N, C, H, W] as [N·C, H, W]."""
    return (a.shape[0] * a.shape[1], a.shape[2], a.shape[3])


# -- CPU --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def forward_cpu(x, y, ih, lh, iw, lw):
    # x [P, H, W] -> y [P, Ho, Wo] through the tables
    for p in prange(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                acc = y.dtype.type(0)
                for k in range(ih.shape[0]):
                    row = x[p, ih[k, i]]
                    t = y.dtype.type(0)
                    for m in range(iw.shape[0]):
                        t += lw[m, j] * row[iw[m, j]]
                    acc += lh[k, i] * t
                y[p, i, j] = acc


@njit(cache=True, parallel=True)
def backward_cpu(dy, dx, ih, lh, iw, lw, acc):
    # dx [P, H, W] (+)= the taps of dy [P, Ho, Wo] scattered back; a plane per thread
    for p in prange(dy.shape[0]):
        if not acc:
            dx[p] = 0
        for i in range(dy.shape[1]):
            for k in range(ih.shape[0]):
                row = dx[p, ih[k, i]]
                for j in range(dy.shape[2]):
                    g = lh[k, i] * dy[p, i, j]
                    for m in range(iw.shape[0]):
                        row[iw[m, j]] += lw[m, j] * g


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    dt = b.y.dtype
    tabs = tables(b, dt)
    x, y = view(b.x[0], *planes(b.x[0])), view(b.y, *planes(b.y))
    fwd = Launch(forward_cpu, x, y, *tabs)
    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx = view(b.dy, *planes(b.y)), view(b.dx[0], *planes(b.x[0]))
    return fwd, Launch(backward_cpu, dy, dx, *tabs, bool(b.acc[0]))


# -- CUDA -------------------------------------------------------------------------------------------


@cuda.jit
def forward_cuda(x, y, ih, lh, iw, lw):
    # one thread per output cell
    ho, wo = y.shape[1], y.shape[2]
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        j = e % wo
        i = (e // wo) % ho
        p = e // (wo * ho)
        acc = y.dtype.type(0)
        for k in range(ih.shape[0]):
            t = y.dtype.type(0)
            for m in range(iw.shape[0]):
                t += lw[m, j] * x[p, ih[k, i], iw[m, j]]
            acc += lh[k, i] * t
        y[p, i, j] = acc


@cuda.jit
def backward_cuda(dy, dx, ih, lh, iw, lw, acc):
    # one thread per input row (p, r): the output rows whose taps read r, in the CPU's order
    h = dx.shape[1]
    for e in range(cuda.grid(1), dx.shape[0] * h, cuda.gridsize(1)):
        r = e % h
        p = e // h
        if not acc:
            for c in range(dx.shape[2]):
                dx[p, r, c] = 0
        for i in range(dy.shape[1]):
            for k in range(ih.shape[0]):
                if ih[k, i] != r:
                    continue
                for j in range(dy.shape[2]):
                    g = lh[k, i] * dy[p, i, j]
                    for m in range(iw.shape[0]):
                        dx[p, r, iw[m, j]] += lw[m, j] * g


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    tabs = [cuda.to_device(t) for t in tables(b, np.dtype(b.y.dtype))]  # uploaded once, at bind time
    x, y = b.x[0].reshape(planes(b.x[0])), b.y.reshape(planes(b.y))
    grid = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward_cuda[grid](x, y, *tabs)

    if b.dy is None or b.dx[0] is None:
        return fwd, nothing
    dy, dx = b.dy.reshape(planes(b.y)), b.dx[0].reshape(planes(b.x[0]))
    rows = cuda_core.grid_1d(math.prod(dx.shape[:2]))
    acc = bool(b.acc[0])

    def bwd() -> None:
        backward_cuda[rows](dy, dx, *tabs, acc)

    return fwd, bwd
