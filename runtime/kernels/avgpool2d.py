"""avgpool2d kernels: window mean with zero padding, as torch.nn.AvgPool2d (ceil_mode off).

The divisor is kh·kw with ``count_include_pad`` (windows never leave the padded input), else the
number of window cells inside the input. Arrays are viewed as planes [N·C, H·W] at bind time.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._conv_common import pool_geometry, view, window


@njit(cache=True)
def divisor(hs, he, ws, we, kh, kw, include_pad):
    return kh * kw if include_pad else (he - hs) * (we - ws)


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
def backward_cpu(dy, dx, include_pad, acc_dx, geo):
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
    geo = pool_geometry(b)
    n, c, h, w = b.x[0].shape
    x = view(b.x[0], n * c, h * w)
    y = view(b.y, n * c, -1)
    include = bool(b.attrs["count_include_pad"])
    fwd = lambda: forward_cpu(x, y, include, geo)  # noqa: E731
    if b.dx[0] is None:
        return fwd, nothing
    dy = view(b.dy, *y.shape)
    dx = view(b.dx[0], *x.shape)
    acc = b.acc[0]
    return fwd, lambda: backward_cpu(dy, dx, include, acc, geo)
