"""maxpool2d kernels: window maximum with padding as -inf, as torch.nn.MaxPool2d.

Forward saves the flat index (into the unpadded H·W plane) of each window's maximum in
saved["argmax"]: the first maximum in row-major window order, NaN winning, as PyTorch; a window
of -inf keeps its first cell inside the input. Backward scatters dy to those indices. Arrays are
viewed as planes [N·C, H·W] at bind time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binding import Binding, Thunk, nothing
from ._conv_common import pool_geometry, view, window


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
def backward_cpu(dy, argmax, dx, acc_dx):
    # dy, argmax [P, Ho·Wo]; dx [P, H·W]
    for q in range(dy.shape[0]):
        dxq = dx[q]
        if not acc_dx:
            dxq[:] = 0
        for p in range(dy.shape[1]):
            dxq[argmax[q, p]] += dy[q, p]


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    geo = pool_geometry(b)
    n, c, h, w = b.x[0].shape
    x = view(b.x[0], n * c, h * w)
    y = view(b.y, n * c, -1)
    argmax = view(b.saved["argmax"], *y.shape)
    fwd = lambda: forward_cpu(x, y, argmax, geo)  # noqa: E731
    if b.dx[0] is None:
        return fwd, nothing
    dy = view(b.dy, *y.shape)
    dx = view(b.dx[0], *x.shape)
    acc = b.acc[0]
    return fwd, lambda: backward_cpu(dy, argmax, dx, acc)
