"""Direct conv2d on the CPU (no im2col, no BLAS), for few input channels and small kernels.

It owns the kernels for the shapes ``conv2d.bind_cpu`` sends here (``direct_fits``: stride 1,
dilation 1, one group, few channels·taps), their per-thread scratch layout and their binder
(``bind``), and the backward's views both conv2d binders share (``grad_views``).

Each sample's input is copied into a zero-bordered plane xp [C, Hp, Wp] (Hp = Ho + kh - 1,
Wp = Wo + kw - 1). On that plane, output (i, j) of tap (u, v) reads xp[c, i + u, j + v], so in
flat "wide" coordinates p = i·Wp + j every tap is one contiguous shifted run of length
L = (Ho - 1)·Wp + Wo (columns j >= Wo of the run are junk, never stored):

    forward   row[p]              = b[o] + Σ_{c,u,v} W[o,c,u,v] · xp[c, u·Wp + v + p]
    backward  dW[o,c,u,v]         = Σ_p dyp[o, p] · xp[c, u·Wp + v + p]     (dyp: dy widened to Wp,
                                                                             zeros in the junk)
              dxp[c, u·Wp + v + p] += W[o,c,u,v] · dyp[o, p]               (dx = dxp's interior)

so the innermost loop is always one axpy or dot over L contiguous values, which LLVM vectorizes.
Threads: as in the GEMM path, T contiguous blocks of samples (prange), each with its own scratch
and dW partial; the partials are summed in thread order, so results are deterministic for a
given T. Offsets are unsigned: numba's wraparound check on signed indices blocks vectorization.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..binding import Binding, Thunk, nothing
from ..launch import Launch
from ._epilogue import code, copy_act
from ._views import view

# geo: (C, H, W, kh, kw, pad_top, pad_left, Ho, Wo)


def direct_fits(geo: tuple[int, ...], max_taps: int) -> bool:
    """Whether the direct kernels take a conv2d geometry (conv2d.geometry's 14-tuple)."""
    c, _, _, kh, kw, sh, sw, dh, dw, _, _, _, _, groups = geo
    # a 1x1 convolution stays with GEMM: it needs no im2col there (x[n] is its column matrix)
    one_by_one = kh == kw == 1
    return groups == 1 and sh == sw == dh == dw == 1 and not one_by_one and c * kh * kw <= max_taps


def scratch_sizes(geo: tuple[int, ...], o: int) -> tuple[int, int, int, int]:
    """Per thread, in elements: the padded plane xp, its gradient dxp, dyp [O, L] (its first row
    doubles as the forward's output row) and the dW partial [O, C·kh·kw]."""
    c, kh, kw, ho, wo = geo[0], geo[3], geo[4], geo[11], geo[12]
    hp, wp = ho + kh - 1, wo + kw - 1
    length = (ho - 1) * wp + wo
    return c * hp * wp, c * hp * wp, o * length, o * c * kh * kw


@njit(cache=True)
def pad_sample(xf, xp, geo):
    """The interior of xp (flat C·Hp·Wp, borders already zero) from one sample (flat C·H·W).
    With stride 1, Hp = H + pad_top + pad_bottom and Wp = W + pad_left + pad_right."""
    c, h, w, kh, kw, pt, pl, ho, wo = geo
    hp, wp = ho + kh - 1, wo + kw - 1
    for ch in range(c):
        for hi in range(h):
            src = uint64((ch * h + hi) * w)
            dst = uint64((ch * hp + hi + pt) * wp + pl)
            for j in range(uint64(w)):
                xp[dst + j] = xf[src + j]


@njit(cache=True)
def taps_axpy(dst, d0, src, s0, step, w, q, wstep, n, length):
    """dst[d0 + p] += Σ_{k<m} w[q + wstep·k] · src[s0 + step·k + p] for p < length, over the first m
    of n terms (m = 5, 3 or 1: fixed unrolls that vectorize); returns m. Summing m terms in one pass
    loads and stores dst once per m terms instead of once per term."""
    if n >= 5:
        w0, w1, w2 = w[q], w[q + wstep], w[q + 2 * wstep]
        w3, w4 = w[q + 3 * wstep], w[q + 4 * wstep]
        a0, a1, a2 = uint64(s0), uint64(s0 + step), uint64(s0 + 2 * step)
        a3, a4 = uint64(s0 + 3 * step), uint64(s0 + 4 * step)
        for p in range(uint64(length)):
            dst[d0 + p] += (
                w0 * src[a0 + p] + w1 * src[a1 + p] + w2 * src[a2 + p] + w3 * src[a3 + p] + w4 * src[a4 + p]
            )
        return 5
    if n >= 3:
        w0, w1, w2 = w[q], w[q + wstep], w[q + 2 * wstep]
        a0, a1, a2 = uint64(s0), uint64(s0 + step), uint64(s0 + 2 * step)
        for p in range(uint64(length)):
            dst[d0 + p] += w0 * src[a0 + p] + w1 * src[a1 + p] + w2 * src[a2 + p]
        return 3
    w0, a0 = w[q], uint64(s0)
    for p in range(uint64(length)):
        dst[d0 + p] += w0 * src[a0 + p]
    return 1


@njit(cache=True, fastmath={"reassoc"})  # reassoc lets the dot products vectorize
def taps_dot(out, q, a, src, s0, n, length, first):
    """out[q + k] (+)= Σ_p a[p] · src[s0 + k + p] for the first m of n taps (m = 5, 3 or 1, as
    taps_axpy), written when first, else added; returns m. One pass reads a once for m taps."""
    z = out.dtype.type(0)  # the dtype's own sums: float64 ones would halve the lanes
    if n >= 5:
        c0 = c1 = c2 = c3 = c4 = z
        a0, a1, a2, a3, a4 = uint64(s0), uint64(s0 + 1), uint64(s0 + 2), uint64(s0 + 3), uint64(s0 + 4)
        for p in range(uint64(length)):
            ap = a[p]
            c0 += ap * src[a0 + p]
            c1 += ap * src[a1 + p]
            c2 += ap * src[a2 + p]
            c3 += ap * src[a3 + p]
            c4 += ap * src[a4 + p]
        out[q] = c0 if first else out[q] + c0
        out[q + 1] = c1 if first else out[q + 1] + c1
        out[q + 2] = c2 if first else out[q + 2] + c2
        out[q + 3] = c3 if first else out[q + 3] + c3
        out[q + 4] = c4 if first else out[q + 4] + c4
        return 5
    if n >= 3:
        c0 = c1 = c2 = z
        a0, a1, a2 = uint64(s0), uint64(s0 + 1), uint64(s0 + 2)
        for p in range(uint64(length)):
            ap = a[p]
            c0 += ap * src[a0 + p]
            c1 += ap * src[a1 + p]
            c2 += ap * src[a2 + p]
        out[q] = c0 if first else out[q] + c0
        out[q + 1] = c1 if first else out[q + 1] + c1
        out[q + 2] = c2 if first else out[q + 2] + c2
        return 3
    c0 = z
    a0 = uint64(s0)
    for p in range(uint64(length)):
        c0 += a[p] * src[a0 + p]
    out[q] = c0 if first else out[q] + c0
    return 1


@njit(cache=True)
def forward_sample(xf, w2, bias, yf, xp, row, act, geo):
    # xf [C·H·W]; w2 [O, C·kh·kw]; bias [O] or empty; yf [O·Ho·Wo]; row: >= L values; act: the
    # fused epilogue (_epilogue), applied as each output row is copied out
    c, _, _, kh, kw, _, _, ho, wo = geo
    wp = wo + kw - 1
    hp = ho + kh - 1
    length = (ho - 1) * wp + wo
    pad_sample(xf, xp, geo)
    for o in range(w2.shape[0]):
        b0 = bias[o] if bias.size else row.dtype.type(0)
        for p in range(uint64(length)):
            row[p] = b0
        wo_ = w2[o]
        for ch in range(c):
            for u in range(kh):
                v = 0
                while v < kw:  # row += the taps (ch, u, v..): shifted runs of xp
                    q = (ch * kh + u) * kw + v
                    v += taps_axpy(row, uint64(0), xp, (ch * hp + u) * wp + v, 1, wo_, q, 1, kw - v, length)
        for i in range(ho):
            copy_act(row, i * wp, yf, (o * ho + i) * wo, wo, row.dtype.type(0), False, act)


@njit(cache=True, parallel=True)
def forward_cpu(x, w2, bias, y, xps, dyps, act, geo):
    # x [N, C·H·W]; y [N, O·Ho·Wo]; per thread t: plane xps[t], output row dyps[t][0]
    nt, n = xps.shape[0], x.shape[0]
    for t in prange(nt):
        xps[t] = 0  # the borders: the workspace is shared with other modules between calls
        for s in range(t * n // nt, (t + 1) * n // nt):
            forward_sample(x[s], w2, bias, y[s], xps[t], dyps[t][0], act, geo)


@njit(cache=True, fastmath={"reassoc"})  # reassoc lets dW's dot products vectorize
def backward_sample(xf, w2, dyf, dxf, dwt, xp, dxp, dyp, first, acc_dx, geo):
    # dyf [O·Ho·Wo]; dxf [C·H·W] or empty; dwt [O, C·kh·kw]: this thread's dW partial, written
    # when first, else added (empty: no dW); dyp [O, L] with zeros in the junk columns
    c, h, w, kh, kw, pt, pl, ho, wo = geo
    wp = wo + kw - 1
    hp = ho + kh - 1
    length = uint64((ho - 1) * wp + wo)
    o_n = w2.shape[0]
    for o in range(o_n):
        for i in range(ho):
            src = uint64((o * ho + i) * wo)
            dst = uint64(i * wp)
            dyo = dyp[o]
            for j in range(uint64(wo)):
                dyo[dst + j] = dyf[src + j]
    if dwt.size:
        pad_sample(xf, xp, geo)
        for o in range(o_n):
            dyo, dwo = dyp[o], dwt[o]
            for ch in range(c):
                for u in range(kh):
                    v = 0
                    while v < kw:
                        q = (ch * kh + u) * kw + v
                        v += taps_dot(dwo, q, dyo, xp, (ch * hp + u) * wp + v, kw - v, length, first)
    if dxf.size:
        dxp[:] = 0
        wf, dyf_all = w2.reshape(-1), dyp.reshape(-1)
        k, row_len = w2.shape[1], dyp.shape[1]
        for ch in range(c):
            for u in range(kh):
                for v in range(kw):
                    q = (ch * kh + u) * kw + v
                    base = uint64((ch * hp + u) * wp + v)
                    o = 0
                    while o < o_n:  # dxp's run for tap (ch, u, v) += Σ_o W[o, q] · dyp[o]
                        o += taps_axpy(
                            dxp, base, dyf_all, o * row_len, row_len, wf, o * k + q, k, o_n - o, length
                        )
        # xp's interior is the input: with stride 1, Hp = H + pad_top + pad_bottom and likewise Wp
        for ch in range(c):
            for hi in range(h):
                dst = uint64((ch * h + hi) * w)
                src = uint64((ch * hp + hi + pt) * wp + pl)
                if acc_dx:
                    for j in range(uint64(w)):
                        dxf[dst + j] += dxp[src + j]
                else:
                    for j in range(uint64(w)):
                        dxf[dst + j] = dxp[src + j]


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc lets db's float64 sums vectorize
def backward_cpu(x, w2, dy, dx, dw2, db, xps, dxps, dyps, dwt, acc_dx, geo):
    # dy [N, O·Ho·Wo]; dx [N, C·H·W] or empty; dw2 [O, K] or empty; db [O] or empty; per thread t:
    # xps[t], dxps[t], dyps[t] [O, L] and the dW partial dwt[t] [O, K] (empty when dw2 is)
    nt, n = xps.shape[0], dy.shape[0]
    no_dx = dx.reshape(-1)[:0]
    for t in prange(nt):
        xps[t] = 0
        dyps[t] = 0  # the junk columns stay zero: each sample writes only columns j < Wo
        s0, s1 = t * n // nt, (t + 1) * n // nt
        if s0 == s1:
            dwt[t] = 0
        for s in range(s0, s1):
            dxn = dx[s] if dx.size else no_dx
            backward_sample(x[s], w2, dy[s], dxn, dwt[t], xps[t], dxps[t], dyps[t], s == s0, acc_dx, geo)
    if dw2.size:
        for o in prange(dw2.shape[0]):
            for q in range(dw2.shape[1]):
                acc = dwt[0, o, q]
                for t in range(1, nt):
                    acc += dwt[t, o, q]
                dw2[o, q] = acc
    if db.size:
        o_n = db.size
        per = dy.shape[1] // o_n
        for o in prange(o_n):
            acc = 0.0
            for s in range(n):
                d = dy[s, o * per : (o + 1) * per]
                for p in range(d.size):
                    acc += d[p]
            db[o] = acc


def grad_views(b: Binding, x: np.ndarray, y: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, ...]:
    """The backward's views (dy, dx, dW, db) shaped as y, x, w2 and the bias, with size-0 stand-ins
    for the gradients nobody needs (kernels test ``.size``)."""
    dt = w2.dtype
    dx = view(b.dx[0], *x.shape) if b.dx[0] is not None else np.zeros((0, x.shape[1]), dt)
    gw = b.dp.get("w")
    dw2 = view(gw, *w2.shape) if gw is not None else np.zeros((0, w2.shape[1]), dt)
    db = b.dp.get("b")
    return view(b.dy, *y.shape), dx, dw2, db if db is not None else np.zeros(0, dt)


def bind(b: Binding, geo: tuple[int, ...], nt: int) -> tuple[Thunk, Thunk]:
    """The direct kernels bound on nt threads' scratch in the workspace (geo: conv2d.geometry)."""
    c, h, w, kh, kw, _, _, _, _, pt, pl, ho, wo, _ = geo
    dgeo = (c, h, w, kh, kw, pt, pl, ho, wo)
    n = b.x[0].shape[0]
    wt = b.p["w"]
    dt, o = wt.dtype, wt.shape[0]
    w2 = view(wt, o, -1)
    x = view(b.x[0], n, -1)
    y = view(b.y, n, -1)
    sizes = scratch_sizes(geo, o)
    scratch = b.workspace(dt, nt * sum(sizes))
    parts, at = [], 0
    for size in sizes:
        parts.append(view(scratch[at : at + nt * size], nt, size))
        at += nt * size
    xps, dxps, dyps, dwt = parts
    dyps = view(dyps, nt, o, -1)
    dwt = view(dwt, nt, o, -1)
    empty = np.zeros(0, dt)
    bias = b.p.get("b", empty)
    act = code(b)

    fwd = Launch(forward_cpu, x, w2, bias, y, xps, dyps, act, dgeo)

    if b.dy is None:
        return fwd, nothing
    dy, dx, dw2, db = grad_views(b, x, y, w2)
    if not dw2.size:
        dwt = dwt[:, :, :0]  # frozen weights: no partials to compute
    acc = b.acc[0]

    return fwd, Launch(backward_cpu, x, w2, dy, dx, dw2, db, xps, dxps, dyps, dwt, acc, dgeo)
