"""maxpool2d kernels: window maximum with padding as -inf, as torch.nn.MaxPool2d.

Forward saves the flat index (into the unpadded H·W plane) of each window's maximum in
saved["argmax"]: the first maximum in row-major window order, NaN winning, as PyTorch; a window
of -inf keeps its first cell inside the input. Backward scatters dy to those indices. Arrays are
viewed as planes [N·C, H·W] at bind time.

CUDA: forward runs one thread per output with the CPU's window scan (same maximum, same argmax).
Backward is a gather, so overlapping windows need no atomics: the thread of input cell (h, w) walks
the outputs whose window covers it, in output order, and adds the dy of those whose saved argmax is
this cell — the same terms in the same order as the CPU's scatter.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, njit

from ..binding import Binding, Thunk
from ._windows import bind_pool_cpu, bind_pool_cuda, covering_cuda, window, window_cuda


@njit(cache=True)
def forward_cpu(x, y, argmax, geo):
    # x [P, H·W]; y, argmax [P, Ho·Wo]
    h, w, kh, kw, sh, sw, ph, pw, ho, wo = geo
    for q in range(x.shape[0]):
        xq = x[q]
        for i in range(ho):
            hs, he = window(i, sh, ph, kh, h)
            for j in range(wo):
                ws, we = window(j, sw, pw, kw, w)
                best_i = hs * w + ws
                best = -np.inf
                for u in range(hs, he):
                    for v in range(ws, we):
                        val = xq[u * w + v]
                        if val > best or val != val:
                            best = val
                            best_i = u * w + v
                y[q, i * wo + j] = best
                argmax[q, i * wo + j] = best_i


@njit(cache=True)
def backward_cpu(dy, argmax, dx, acc_dx, geo):
    # dy, argmax [P, Ho·Wo]; dx [P, H·W]; geo unused (the argmax says where each dy goes)
    for q in range(dy.shape[0]):
        dxq = dx[q]
        if not acc_dx:
            dxq[:] = 0
        for p in range(dy.shape[1]):
            dxq[argmax[q, p]] += dy[q, p]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cpu(b, forward_cpu, backward_cpu, saved="argmax")


@cuda.jit
def forward_cuda(x, y, argmax, h, w, kh, kw, sh, sw, ph, pw, ho, wo):
    # x [P, H·W]; y, argmax [P, Ho·Wo]: one thread per output, the CPU's scan (first max, NaN wins)
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        q, o = e // (ho * wo), e % (ho * wo)
        hs, he = window_cuda(o // wo, sh, ph, kh, h)
        ws, we = window_cuda(o % wo, sw, pw, kw, w)
        best_i = hs * w + ws
        best = x.dtype.type(-math.inf)
        for u in range(hs, he):
            for v in range(ws, we):
                val = x[q, u * w + v]
                if val > best or val != val:
                    best = val
                    best_i = u * w + v
        y[q, o] = best
        argmax[q, o] = best_i


@cuda.jit
def backward_cuda(dy, argmax, dx, acc, h, w, kh, kw, sh, sw, ph, pw, ho, wo):
    # dx [P, H·W] (+)= Σ dy[q, o] over the outputs o covering the cell whose argmax is the cell
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        q, cell = e // (h * w), e % (h * w)
        i0, i1 = covering_cuda(cell // w, sh, ph, kh, ho)
        j0, j1 = covering_cuda(cell % w, sw, pw, kw, wo)
        t = dx[q, cell] if acc else dx.dtype.type(0)
        for i in range(i0, i1):
            for j in range(j0, j1):
                if argmax[q, i * wo + j] == cell:
                    t += dy[q, i * wo + j]
        dx[q, cell] = t


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cuda(b, forward_cuda, backward_cuda, saved="argmax")
