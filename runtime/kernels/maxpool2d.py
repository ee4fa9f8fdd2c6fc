"""maxpool2d kernels: window maximum with padding as -inf, as torch.nn.MaxPool2d.

Windows take the taps of ``_windows.window`` (dilation, per-side padding and ceil_mode included:
the taps outside the input are skipped; the contract guarantees each window has one inside).
Forward saves the flat index (into the unpadded H·W plane) of each window's maximum in
saved["argmax"]: the first maximum in row-major window order, NaN winning, as PyTorch; a window
of -inf keeps its first cell inside the input. Backward scatters dy to those indices. Arrays are
viewed as planes [N·C, H·W] at bind time.

CPU: 2x2 windows at stride 2 without padding (``_windows.is_fast_pool``) have a forward loop of
their own, the general scan unrolled (the same maximum and argmax). Large tensors run in contiguous
chunks of planes on numba's threads (``_windows.bind_pool_cpu``).

CUDA: forward runs one thread per output with the CPU's window scan (same maximum, same argmax).
Backward is a gather, so overlapping windows need no atomics: the thread of input cell (h, w) walks
the outputs whose window covers it, in output order, and adds the dy of those whose saved argmax is
this cell — the same terms in the same order as the CPU's scatter.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit, prange, uint64

from ..binding import Binding, Thunk
from ._windows import bind_pool_cpu, bind_pool_cuda, covering_cuda, window, window_cuda

#: Runs numba-parallel loops over samples or planes: BLAS stays on one thread in its plans
#: (``Binding.blas_threads``).
PARALLEL_CPU = True

_U1 = np.uint64(1)  # uint64 indices skip numba's negative-index wrap (which blocks vector loads)


@njit(cache=True, inline="always")
def _scan(xq, k, best, best_i):
    """One step of the window scan: cell k replaces the best so far when larger, or NaN."""
    val = xq[k]
    take = val > best or val != val
    return (val if take else best), (k if take else best_i)


@njit(cache=True)
def forward_cpu(x, y, argmax, geo, fast, lo, hi):
    # x [P, H·W]; y, argmax [P, Ho·Wo]; planes [lo, hi)
    _, w, _, _, _, _, dh, dw, _, _, _, _, ho, wo = geo
    if fast:  # 2x2/2, no padding: the general scan, unrolled
        for q in range(lo, hi):
            xq, yq, aq = x[q], y[q], argmax[q]
            for i in range(ho):
                r0, r1, o = uint64(2 * i * w), uint64((2 * i + 1) * w), uint64(i * wo)
                for j in range(uint64(wo)):
                    best, best_i = _scan(xq, r0 + j + j, -np.inf, r0 + j + j)
                    best, best_i = _scan(xq, r0 + j + j + _U1, best, best_i)
                    best, best_i = _scan(xq, r1 + j + j, best, best_i)
                    best, best_i = _scan(xq, r1 + j + j + _U1, best, best_i)
                    yq[o + j] = best
                    aq[o + j] = best_i
        return
    for q in range(lo, hi):
        if dh == 1 and dw == 1:  # literal unit steps: a runtime step made the loops ~20% slower
            _planes_general(x[q], y[q], argmax[q], geo, 1, 1)
        else:
            _planes_general(x[q], y[q], argmax[q], geo, dh, dw)


@njit(cache=True, inline="always")
def _planes_general(xq, yq, aq, geo, dh, dw):
    """One plane's windows by the general scan (taps every dh rows and dw columns)."""
    h, w, kh, kw, sh, sw, _, _, pt, pl, _, _, ho, wo = geo
    for i in range(ho):
        hs, he = window(i, sh, pt, kh, dh, h)
        for j in range(wo):
            ws, we = window(j, sw, pl, kw, dw, w)
            best_i = hs * w + ws
            best = -np.inf
            for u in range(hs, he, dh):
                for v in range(ws, we, dw):
                    best, best_i = _scan(xq, u * w + v, best, best_i)
            yq[i * wo + j] = best
            aq[i * wo + j] = best_i


@njit(cache=True)
def backward_cpu(dy, argmax, dx, acc_dx, geo, fast, lo, hi):
    # dy, argmax [P, Ho·Wo]; dx [P, H·W]; planes [lo, hi); geo and fast unused (the argmax says
    # where each dy goes)
    for q in range(lo, hi):
        dxq = dx[q]
        if not acc_dx:
            dxq[:] = 0
        for p in range(dy.shape[1]):
            dxq[argmax[q, p]] += dy[q, p]


@njit(cache=True, parallel=True)
def forward_par(x, y, argmax, geo, fast, nt):
    for t in prange(nt):
        forward_cpu(x, y, argmax, geo, fast, t * x.shape[0] // nt, (t + 1) * x.shape[0] // nt)


@njit(cache=True, parallel=True)
def backward_par(dy, argmax, dx, acc_dx, geo, fast, nt):
    for t in prange(nt):
        backward_cpu(dy, argmax, dx, acc_dx, geo, fast, t * dx.shape[0] // nt, (t + 1) * dx.shape[0] // nt)


KERNELS_CPU = (forward_cpu, backward_cpu, forward_par, backward_par)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cpu(b, KERNELS_CPU, saved="argmax")


@cuda.jit
def forward_cuda(x, y, argmax, h, w, kh, kw, sh, sw, dh, dw, pt, pl, hp, wp, ho, wo):
    # x [P, H·W]; y, argmax [P, Ho·Wo]: one thread per output, the CPU's scan (first max, NaN wins)
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        q, o = e // (ho * wo), e % (ho * wo)
        hs, he = window_cuda(o // wo, sh, pt, kh, dh, h)
        ws, we = window_cuda(o % wo, sw, pl, kw, dw, w)
        best_i = hs * w + ws
        best = x.dtype.type(-math.inf)
        for u in range(hs, he, dh):
            for v in range(ws, we, dw):
                val = x[q, u * w + v]
                if val > best or val != val:
                    best = val
                    best_i = u * w + v
        y[q, o] = best
        argmax[q, o] = best_i


@cuda.jit
def backward_cuda(dy, argmax, dx, acc, h, w, kh, kw, sh, sw, dh, dw, pt, pl, hp, wp, ho, wo):
    # dx [P, H·W] (+)= Σ dy[q, o] over the outputs o whose window's span covers the cell and whose
    # argmax is the cell
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        q, cell = e // (h * w), e % (h * w)
        i0, i1 = covering_cuda(cell // w, sh, pt, dh * (kh - 1) + 1, ho)
        j0, j1 = covering_cuda(cell % w, sw, pl, dw * (kw - 1) + 1, wo)
        t = dx[q, cell] if acc else dx.dtype.type(0)
        for i in range(i0, i1):
            for j in range(j0, j1):
                if argmax[q, i * wo + j] == cell:
                    t += dy[q, i * wo + j]
        dx[q, cell] = t


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cuda(b, forward_cuda, backward_cuda, saved="argmax")
