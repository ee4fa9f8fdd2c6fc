"""avgpool2d kernels: window mean with zero padding, as torch.nn.AvgPool2d.

The divisor (``divisor``), as PyTorch: with ``count_include_pad`` the window's cells inside the
padded input (kh·kw but where a ceil_mode window hangs over its bottom/right edge), else its cells
inside the unpadded input. Arrays are viewed as planes [N·C, H·W] at bind time.

CPU: 2x2 windows at stride 2 without padding (``_windows.is_fast_pool``) have loops of their own,
with the general loops' float64 sums in the same order and the same divisor (4: a multiplication by
0.25 rounds as the division does), so both give bitwise equal results. Large tensors run in
contiguous chunks of planes on numba's threads (``_windows.bind_pool_cpu``).

CUDA: one thread per output sums its window (forward); backward is a gather, one thread per input
cell adding dy / divisor of the outputs whose window covers it, in output order (the CPU's scatter
order), so overlapping windows need no atomics. Sums run in the arrays' dtype.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from ._windows import (
    bind_pool_cpu,
    bind_pool_cuda,
    covering_cuda,
    padded_span,
    padded_span_cuda,
    window,
    window_cuda,
)

#: Runs numba-parallel loops over samples or planes: BLAS stays on one thread in its plans
#: (``Binding.blas_threads``).
PARALLEL_CPU = True

_U1 = np.uint64(1)  # uint64 indices skip numba's negative-index wrap (which blocks vector loads)


@njit(cache=True)
def divisor(i, j, hs, he, ws, we, geo, include_pad):
    """Output (i, j)'s divisor; [hs, he) x [ws, we) is its window inside the input."""
    _, _, kh, kw, sh, sw, _, _, pt, pl, hp, wp, _, _ = geo
    if include_pad:
        return padded_span(i, sh, pt, kh, hp) * padded_span(j, sw, pl, kw, wp)
    return (he - hs) * (we - ws)


@cuda.jit(device=True)
def _divisor_cuda(i, j, hs, he, ws, we, kh, kw, sh, sw, pt, pl, hp, wp, include_pad):
    # ``divisor`` on the device (its geometry as scalars)
    if include_pad:
        return padded_span_cuda(i, sh, pt, kh, hp) * padded_span_cuda(j, sw, pl, kw, wp)
    return (he - hs) * (we - ws)


@njit(cache=True)
def forward_cpu(x, y, include_pad, geo, fast, lo, hi):
    # x [P, H·W]; y [P, Ho·Wo]; planes [lo, hi)
    h, w, kh, kw, sh, sw, _, _, pt, pl, _, _, ho, wo = geo
    if fast:  # 2x2/2, no padding: the general loop's sum, unrolled
        for q in range(lo, hi):
            xq, yq = x[q], y[q]
            for i in range(ho):
                r0, r1, o = uint64(2 * i * w), uint64((2 * i + 1) * w), uint64(i * wo)
                for j in range(uint64(wo)):
                    s = 0.0
                    s += xq[r0 + j + j]
                    s += xq[r0 + j + j + _U1]
                    s += xq[r1 + j + j]
                    s += xq[r1 + j + j + _U1]
                    yq[o + j] = s * 0.25
        return
    for q in range(lo, hi):
        xq = x[q]
        for i in range(ho):
            hs, he = window(i, sh, pt, kh, 1, h)
            for j in range(wo):
                ws, we = window(j, sw, pl, kw, 1, w)
                s = 0.0
                for u in range(hs, he):
                    for v in range(ws, we):
                        s += xq[u * w + v]
                y[q, i * wo + j] = s / divisor(i, j, hs, he, ws, we, geo, include_pad)


@njit(cache=True)
def backward_cpu(dy, include_pad, dx, acc_dx, geo, fast, lo, hi):
    # dy [P, Ho·Wo]; dx [P, H·W]; planes [lo, hi)
    h, w, kh, kw, sh, sw, _, _, pt, pl, _, _, ho, wo = geo
    if fast:  # each cell in at most one window: dx = dy/4 there (+= with acc), 0 elsewhere
        for q in range(lo, hi):
            dyq, dxq = dy[q], dx[q]
            if not acc_dx and (h % 2 or w % 2):
                dxq[:] = 0  # the last row or column no window reads
            for i in range(ho):
                r0, r1, o = uint64(2 * i * w), uint64((2 * i + 1) * w), uint64(i * wo)
                if acc_dx:
                    for j in range(uint64(wo)):
                        g = dyq[o + j] * 0.25
                        dxq[r0 + j + j] += g
                        dxq[r0 + j + j + _U1] += g
                        dxq[r1 + j + j] += g
                        dxq[r1 + j + j + _U1] += g
                else:
                    for j in range(uint64(wo)):
                        g = dyq[o + j] * 0.25
                        dxq[r0 + j + j] = g
                        dxq[r0 + j + j + _U1] = g
                        dxq[r1 + j + j] = g
                        dxq[r1 + j + j + _U1] = g
        return
    for q in range(lo, hi):
        dxq = dx[q]
        if not acc_dx:
            dxq[:] = 0
        for i in range(ho):
            hs, he = window(i, sh, pt, kh, 1, h)
            for j in range(wo):
                ws, we = window(j, sw, pl, kw, 1, w)
                g = dy[q, i * wo + j] / divisor(i, j, hs, he, ws, we, geo, include_pad)
                for u in range(hs, he):
                    for v in range(ws, we):
                        dxq[u * w + v] += g


@njit(cache=True, parallel=True)
def forward_par(x, y, include_pad, geo, fast, nt):
    for t in prange(nt):
        forward_cpu(x, y, include_pad, geo, fast, t * x.shape[0] // nt, (t + 1) * x.shape[0] // nt)


@njit(cache=True, parallel=True)
def backward_par(dy, include_pad, dx, acc_dx, geo, fast, nt):
    for t in prange(nt):
        backward_cpu(
            dy, include_pad, dx, acc_dx, geo, fast, t * dx.shape[0] // nt, (t + 1) * dx.shape[0] // nt
        )


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cpu(b, KERNELS_CPU)


@cuda.jit
def forward_cuda(x, y, include_pad, h, w, kh, kw, sh, sw, dh, dw, pt, pl, hp, wp, ho, wo):
    # x [P, H·W]; y [P, Ho·Wo]: one thread per output (dh, dw are 1: avgpool2d has no dilation)
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        q, o = e // (ho * wo), e % (ho * wo)
        i, j = o // wo, o % wo
        hs, he = window_cuda(i, sh, pt, kh, 1, h)
        ws, we = window_cuda(j, sw, pl, kw, 1, w)
        s = x.dtype.type(0)
        for u in range(hs, he):
            for v in range(ws, we):
                s += x[q, u * w + v]
        d = _divisor_cuda(i, j, hs, he, ws, we, kh, kw, sh, sw, pt, pl, hp, wp, include_pad)
        y[q, o] = s / y.dtype.type(d)


@cuda.jit
def backward_cuda(dy, include_pad, dx, acc, h, w, kh, kw, sh, sw, dh, dw, pt, pl, hp, wp, ho, wo):
    # dx [P, H·W] (+)= Σ dy[q, o] / divisor(o) over the outputs o whose window covers the cell
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        q, cell = e // (h * w), e % (h * w)
        i0, i1 = covering_cuda(cell // w, sh, pt, kh, ho)
        j0, j1 = covering_cuda(cell % w, sw, pl, kw, wo)
        t = dx[q, cell] if acc else dx.dtype.type(0)
        for i in range(i0, i1):
            hs, he = window_cuda(i, sh, pt, kh, 1, h)
            for j in range(j0, j1):
                ws, we = window_cuda(j, sw, pl, kw, 1, w)
                d = _divisor_cuda(i, j, hs, he, ws, we, kh, kw, sh, sw, pt, pl, hp, wp, include_pad)
                t += dy[q, i * wo + j] / dx.dtype.type(d)
        dx[q, cell] = t


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cuda(b, forward_cuda, backward_cuda)
