"""avgpool2d kernels: window mean with zero padding, as torch.nn.AvgPool2d (ceil_mode off).

The divisor is kh·kw with ``count_include_pad`` (windows never leave the padded input), else the
number of window cells inside the input. Arrays are viewed as planes [N·C, H·W] at bind time.

CUDA: one thread per output sums its window (forward); backward is a gather, one thread per input
cell adding dy / divisor of the outputs whose window covers it, in output order (the CPU's scatter
order), so overlapping windows need no atomics. Sums run in the arrays' dtype.
"""

from __future__ import annotations

from numba import cuda, njit

from ..binding import Binding, Thunk
from ._windows import bind_pool_cpu, bind_pool_cuda, covering_cuda, window, window_cuda


@njit(cache=True)
def divisor(hs, he, ws, we, kh, kw, include_pad):
    return kh * kw if include_pad else (he - hs) * (we - ws)


_divisor_cuda = cuda.jit(device=True)(divisor.py_func)  # the same scalar function on the device


@njit(cache=True)
def forward_cpu(x, y, include_pad, geo):
    # x [P, H·W]; y [P, Ho·Wo]
    h, w, kh, kw, sh, sw, ph, pw, ho, wo = geo
    for q in range(x.shape[0]):
        xq = x[q]
        for i in range(ho):
            hs, he = window(i, sh, ph, kh, h)
            for j in range(wo):
                ws, we = window(j, sw, pw, kw, w)
                s = 0.0
                for u in range(hs, he):
                    for v in range(ws, we):
                        s += xq[u * w + v]
                y[q, i * wo + j] = s / divisor(hs, he, ws, we, kh, kw, include_pad)


@njit(cache=True)
def backward_cpu(dy, include_pad, dx, acc_dx, geo):
    # dy [P, Ho·Wo]; dx [P, H·W]
    h, w, kh, kw, sh, sw, ph, pw, ho, wo = geo
    for q in range(dy.shape[0]):
        dxq = dx[q]
        if not acc_dx:
            dxq[:] = 0
        for i in range(ho):
            hs, he = window(i, sh, ph, kh, h)
            for j in range(wo):
                ws, we = window(j, sw, pw, kw, w)
                g = dy[q, i * wo + j] / divisor(hs, he, ws, we, kh, kw, include_pad)
                for u in range(hs, he):
                    for v in range(ws, we):
                        dxq[u * w + v] += g


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cpu(b, forward_cpu, backward_cpu)


@cuda.jit
def forward_cuda(x, y, include_pad, h, w, kh, kw, sh, sw, ph, pw, ho, wo):
    # x [P, H·W]; y [P, Ho·Wo]: one thread per output
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        q, o = e // (ho * wo), e % (ho * wo)
        hs, he = window_cuda(o // wo, sh, ph, kh, h)
        ws, we = window_cuda(o % wo, sw, pw, kw, w)
        s = x.dtype.type(0)
        for u in range(hs, he):
            for v in range(ws, we):
                s += x[q, u * w + v]
        y[q, o] = s / y.dtype.type(_divisor_cuda(hs, he, ws, we, kh, kw, include_pad))


@cuda.jit
def backward_cuda(dy, include_pad, dx, acc, h, w, kh, kw, sh, sw, ph, pw, ho, wo):
    # dx [P, H·W] (+)= Σ dy[q, o] / divisor(o) over the outputs o whose window covers the cell
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        q, cell = e // (h * w), e % (h * w)
        i0, i1 = covering_cuda(cell // w, sh, ph, kh, ho)
        j0, j1 = covering_cuda(cell % w, sw, pw, kw, wo)
        t = dx[q, cell] if acc else dx.dtype.type(0)
        for i in range(i0, i1):
            hs, he = window_cuda(i, sh, ph, kh, h)
            for j in range(j0, j1):
                ws, we = window_cuda(j, sw, pw, kw, w)
                d = _divisor_cuda(hs, he, ws, we, kh, kw, include_pad)
                t += dy[q, i * wo + j] / dx.dtype.type(d)
        dx[q, cell] = t


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return bind_pool_cuda(b, forward_cuda, backward_cuda)
