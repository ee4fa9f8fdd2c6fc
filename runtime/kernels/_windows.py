"""Window geometry of the sliding-window ops (conv2d, maxpool2d, avgpool2d), CPU and CUDA.

Window geometry
    ``pool_geometry(b)``: a pool binding's sizes (the contract's ``Pool2d.geometry``, stride default
    resolved, and the output size, ceil_mode's included). ``window(i, s, p, k, d, size)``: output
    i's taps along one axis as range(start, end, d), clipped to the input (start is the first tap
    inside it); ``window_cuda`` is the same function compiled for the device. ``padded_span(i, s,
    p, k, end)``: output i's window length inside the padded input [-p, end) (avgpool's divisor
    with count_include_pad: a ceil_mode window may hang over its edge). ``covering_cuda(h, s, p,
    span, n_out)``: the outputs [i0, i1) whose window (stride s, padding p, ``span`` cells from its
    first tap to its last) covers input cell h. Backward kernels gather with it: each input cell
    sums the outputs that read it, in output order (the order the CPU's scatter adds them), so no
    two threads write one cell and no atomics are needed.

Pool binders
    ``bind_pool_cpu`` and ``bind_pool_cuda`` bind a pool's kernels over [planes, pixels] rows, with
    one argument order on both: ``forward(x, y, extra, geometry)``, ``backward(dy, extra, dx, acc,
    geometry)``, ``extra`` being maxpool's saved argmax or avgpool's count_include_pad flag. On the
    CPU the kernels also take ``fast`` (``is_fast_pool``: the 2x2, stride-2, unpadded case whose
    windows stay inside the input, which has loops of its own) and run over planes [lo, hi); their
    ``_par`` drivers split the planes into ``_pointwise.threads`` contiguous chunks (each plane
    computed alike: bitwise identical results).

Every function that touches ``cuda.*`` is ``@cuda.jit``: the simulator swaps the ``cuda`` global of a
module only while one of its kernels or device functions runs (docs/cuda.md).
"""

from __future__ import annotations

from typing import Any

from numba import cuda, njit

from ...compiler.ops.maxpool2d import Pool2d
from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from . import cuda_core
from ._pointwise import threads
from ._views import view

#: Tests set this to False to run the general loops where the 2x2 fast path would apply.
FAST_POOLS = True


def is_fast_pool(geo: tuple[int, ...]) -> bool:
    """Whether a pool of geometry ``geo`` (``pool_geometry``) takes the fast loops: 2x2 windows,
    stride 2, no dilation, no top/left padding and every window inside the input, so windows tile
    it without overlap."""
    h, w, *window, ho, wo = geo
    return FAST_POOLS and tuple(window[:8]) == (2, 2, 2, 2, 1, 1, 0, 0) and 2 * ho <= h and 2 * wo <= w


def pool_geometry(b: Binding) -> tuple[int, ...]:
    """(H, W, kh, kw, sh, sw, dh, dw, pad_top, pad_left, H + pad_bottom, W + pad_right, Ho, Wo) of a
    pooling binding."""
    (kh, kw), (sh, sw), (dh, dw), (pt, pb, pl, pr) = Pool2d.geometry(b.attrs)
    h, w = b.x[0].shape[2], b.x[0].shape[3]
    return (h, w, kh, kw, sh, sw, dh, dw, pt, pl, h + pb, w + pr, b.y.shape[2], b.y.shape[3])


@njit(cache=True)
def window(i, s, p, k, d, size):
    """Output i's taps along one axis: range(start, end, d), clipped to the unpadded input."""
    start = i * s - p
    end = min(start + d * (k - 1) + 1, size)
    if start < 0:  # the first tap inside the input (no negative floor division: its rounding differs)
        start += (-start + d - 1) // d * d
    return start, end


window_cuda = cuda.jit(device=True)(window.py_func)


@njit(cache=True)
def padded_span(i, s, p, k, end):
    """Output i's window length inside the padded input [-p, end)."""
    return min(i * s - p + k, end) - (i * s - p)


padded_span_cuda = cuda.jit(device=True)(padded_span.py_func)


@cuda.jit(device=True)
def covering_cuda(h, s, p, span, n_out):
    """[i0, i1): the outputs i < n_out with s·i - p <= h < s·i - p + span (h inside the input)."""
    lo = h + p - span + 1  # the first output starts at or after this tap offset
    i0 = 0 if lo <= 0 else (lo + s - 1) // s  # no negative floor division: its rounding differs
    i1 = min(n_out, (h + p) // s + 1)
    return i0, max(i0, i1)


def bind_pool_cpu(b: Binding, kernels: tuple, saved: str | None = None) -> tuple[Thunk, Thunk]:
    """The CPU thunks of a 2-d pool over [planes, pixels] rows. ``kernels`` = (forward, backward,
    forward_par, backward_par): ``forward(x, y, extra, geo, fast, lo, hi)`` and ``backward(dy,
    extra, dx, acc, geo, fast, lo, hi)`` over planes [lo, hi), the ``_par`` drivers taking the chunk
    count nt in place of lo, hi; ``geo`` is the tuple of ``pool_geometry``, ``fast`` that of
    ``is_fast_pool``, ``extra`` the saved tensor ``saved`` (maxpool's argmax) as rows, or else the
    count_include_pad flag (avgpool)."""
    forward, backward, forward_par, backward_par = kernels
    geo = pool_geometry(b)
    fast = is_fast_pool(geo)
    n, c, h, w = b.x[0].shape
    x = view(b.x[0], n * c, h * w)
    y = view(b.y, n * c, -1)
    extra = view(b.saved[saved], *y.shape) if saved else bool(b.attrs["count_include_pad"])
    p, nt = n * c, threads(x.size)
    if nt == 1:
        fwd = Launch(forward, x, y, extra, geo, fast, 0, p)
    else:
        fwd = Launch(forward_par, x, y, extra, geo, fast, nt)
    if b.dx[0] is None:
        return fwd, nothing
    dy, dx, acc = view(b.dy, *y.shape), view(b.dx[0], *x.shape), b.acc[0]
    if nt == 1:
        return fwd, Launch(backward, dy, extra, dx, acc, geo, fast, 0, p)
    return fwd, Launch(backward_par, dy, extra, dx, acc, geo, fast, nt)


def bind_pool_cuda(b: Binding, forward: Any, backward: Any, saved: str | None = None) -> tuple[Thunk, Thunk]:
    """The thunks of a 2-d pool over [planes, pixels] rows: ``forward(x, y, extra, *geometry)`` and
    ``backward(dy, extra, dx, acc, *geometry)``, where ``extra`` is the saved tensor ``saved``
    (maxpool's argmax) as rows, or else the count_include_pad flag (avgpool)."""
    geo = pool_geometry(b)
    h, w = b.x[0].shape[2], b.x[0].shape[3]
    x = cuda_core.rows(b.x[0], h * w)
    y = cuda_core.rows(b.y, geo[-2] * geo[-1])
    extra = cuda_core.rows(b.saved[saved], y.shape[1]) if saved else bool(b.attrs["count_include_pad"])
    fwd_launch = cuda_core.grid_1d(y.size)

    def fwd() -> None:
        forward[fwd_launch](x, y, extra, *geo)

    if b.dx[0] is None:
        return fwd, nothing
    dy, dx = cuda_core.rows(b.dy, y.shape[1]), cuda_core.rows(b.dx[0], x.shape[1])
    acc = bool(b.acc[0])
    bwd_launch = cuda_core.grid_1d(dx.size)

    def bwd() -> None:
        backward[bwd_launch](dy, extra, dx, acc, *geo)

    return fwd, bwd
