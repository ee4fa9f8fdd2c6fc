"""conv2d on the CPU through im2col / col2im + GEMM, several samples per GEMM.

Thread t (numba prange) convolves its contiguous block of samples in chunks of S samples. Per
chunk, one column matrix cols [C·kh·kw, S·P] (P = Ho·Wo; sample s owns columns [s·P, (s+1)·P))
holds cols[(c, u, v), (s, i, j)] = xpad[s, c, s_h·i + d_h·u, s_w·j + d_w·v]; its rows are
channel-major, so group g's rows are one contiguous block [g·K, (g+1)·K), K = C/groups·kh·kw.
A stage [O, S·P] holds the chunk's outputs (or output gradients) in the same column order:

    forward   stage_g            = W_g [og, K] @ cols_g [K, S·P]
              y[s, o, :]         = act(stage[o, s·P : (s+1)·P] + b[o])     (act: the epilogue)
    backward  stage[o, s·P + p]  = dy[s, o, p]
              dW_gᵀ            (+)= cols_g @ stage_gᵀ       (cols rebuilt by im2col; beta = 1 after
                                                            the thread's first chunk)
              dcols_g            = W_gᵀ @ stage_g           (into cols)
              dx[s]            (+)= col2im(dcols, sample s)

One GEMM per chunk instead of per sample: LeNet-5's 6->16 layer is [16 x 150] @ [150 x 100] per
sample, far too small for BLAS to run near its peak; S samples widen it to [150 x S·100]. y's
layout [N, O, P] is not one matrix over a chunk's columns, hence the stage (a copy of O·P values
per sample, where the bias and the fused activation are applied while the values are in cache).

A 1x1, stride-1, unpadded convolution needs no im2col and no stage: x[s] already is its column
matrix [C, H·W], so it multiplies sample by sample straight into y[s] (dx[s]).

The copy loops run over flat arrays with unsigned offsets: numba's wraparound check on signed
indices blocks vectorization (about 4x slower im2col here). The dW partials are summed in thread
order, so results are deterministic for a given thread count (and chunk size, fixed per shape).
"""

from __future__ import annotations

from numba import njit, prange, uint64

from ._blas import gemm
from ._epilogue import apply_rows, copy_act


@njit(cache=True)
def valid_range(off, s, size, n_out):
    """[j0, j1): the outputs j < n_out whose tap s·j + off lies inside [0, size)."""
    j0 = 0
    if off < 0:
        j0 = min(n_out, (s - 1 - off) // s)
    j1 = max(j0, min(n_out, (size - off + s - 1) // s))
    return j0, j1


@njit(cache=True)
def im2col(xf, colsf, geo, ld, base):
    """One sample's columns, from its input (flat C·H·W), into the flat column matrix whose row r
    starts at r·ld: the sample's columns start at base within each row."""
    nc, h, w, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, _ = geo
    usw = uint64(sw)
    for c in range(nc):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                off = dw * v - pl
                j0, j1 = valid_range(off, sw, w, wo)
                nj = uint64(j1 - j0)
                for i in range(ho):
                    hi = sh * i + dh * u - pt
                    b = uint64(r * ld + base + i * wo)
                    if hi < 0 or hi >= h:
                        for j in range(uint64(wo)):
                            colsf[b + j] = 0
                        continue
                    for j in range(uint64(j0)):
                        colsf[b + j] = 0
                    xb = uint64((c * h + hi) * w + sw * j0 + off)
                    bj = b + uint64(j0)
                    if sw == 1:
                        for j in range(nj):
                            colsf[bj + j] = xf[xb + j]
                    else:
                        for j in range(nj):
                            colsf[bj + j] = xf[xb + j * usw]
                    for j in range(uint64(j1), uint64(wo)):
                        colsf[b + j] = 0


@njit(cache=True)
def col2im(colsf, dxf, geo, ld, base):
    """dx (flat C·H·W of one sample) += its columns (laid out as im2col's) folded back."""
    c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, _ = geo
    usw = uint64(sw)
    for ch in range(c):
        for u in range(kh):
            for v in range(kw):
                r = (ch * kh + u) * kw + v
                off = dw * v - pl
                j0, j1 = valid_range(off, sw, w, wo)
                nj = uint64(j1 - j0)
                for i in range(ho):
                    hi = sh * i + dh * u - pt
                    if hi < 0 or hi >= h:
                        continue
                    bj = uint64(r * ld + base + i * wo + j0)
                    xb = uint64((ch * h + hi) * w + sw * j0 + off)
                    if sw == 1:
                        for j in range(nj):
                            dxf[xb + j] += colsf[bj + j]
                    else:
                        for j in range(nj):
                            dxf[xb + j * usw] += colsf[bj + j]


@njit(cache=True)
def is_direct(geo):
    """A 1x1, stride-1, unpadded convolution: x[n] already is its column matrix [C, H·W]."""
    _, h, w, kh, kw, sh, sw, _, _, pt, pl, ho, wo, _ = geo
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and ho == h and wo == w


@njit(cache=True)
def wide_dims(geo):
    """(Hp, Wp, L) of a stride-1 layer's zero-bordered plane and of its wide column runs."""
    _, _, _, kh, kw, _, _, dh, dw, _, _, ho, wo, _ = geo
    wp = wo + dw * (kw - 1)
    return ho + dh * (kh - 1), wp, (ho - 1) * wp + wo


@njit(cache=True)
def is_wide(geo):
    """Whether the layer takes the wide layout (stride 1; CONV.columns)."""
    return geo[5] == 1 and geo[6] == 1 and not is_direct(geo)


@njit(cache=True)
def is_padded(geo):
    """Whether a wide layer's plane differs from its input (padding): else x[s] is the plane."""
    hp, wp, _ = wide_dims(geo)
    return hp != geo[1] or wp != geo[2]


@njit(cache=True)
def plane_copy(xf, plane, geo, into_plane, acc):
    """Between one sample (flat C·H·W) and the interior of its plane (flat C·Hp·Wp, borders
    untouched): into the plane when into_plane, else back out of it (added when acc)."""
    c, h, w, pt, pl = geo[0], geo[1], geo[2], geo[9], geo[10]
    hp, wp, _ = wide_dims(geo)
    for ch in range(c):
        for hi in range(h):
            a = uint64((ch * h + hi) * w)
            b = uint64((ch * hp + hi + pt) * wp + pl)
            if into_plane:
                for j in range(uint64(w)):
                    plane[b + j] = xf[a + j]
            elif acc:
                for j in range(uint64(w)):
                    xf[a + j] += plane[b + j]
            else:
                for j in range(uint64(w)):
                    xf[a + j] = plane[b + j]


@njit(cache=True)
def wide_im2col(src, colsf, geo, ld, base):
    """A wide layer's columns of one sample from its plane (flat): row (c, u, v) is the run of L
    values at (c·Hp + d_h·u)·Wp + d_w·v, stored at r·ld + base."""
    nc, kh, kw, dh, dw = geo[0], geo[3], geo[4], geo[7], geo[8]
    hp, wp, length = wide_dims(geo)
    for c in range(nc):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                a = uint64((c * hp + dh * u) * wp + dw * v)
                b = uint64(r * ld + base)
                for p in range(uint64(length)):
                    colsf[b + p] = src[a + p]


@njit(cache=True)
def wide_col2im(colsf, dst, geo, ld, base):
    """The plane's gradient (flat) += one sample's wide columns folded back (as wide_im2col)."""
    nc, kh, kw, dh, dw = geo[0], geo[3], geo[4], geo[7], geo[8]
    hp, wp, length = wide_dims(geo)
    for c in range(nc):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                a = uint64((c * hp + dh * u) * wp + dw * v)
                b = uint64(r * ld + base)
                for p in range(uint64(length)):
                    dst[a + p] += colsf[b + p]


@njit(cache=True)
def fill_columns(x, s0, s1, colsf, ld, plane, geo):
    """The column matrix of samples [s0, s1): wide runs of their planes, or im2col's columns."""
    if is_wide(geo):
        length = wide_dims(geo)[2]
        padded = is_padded(geo)
        for s in range(s0, s1):
            src = x[s]
            if padded:
                plane_copy(x[s], plane, geo, True, False)
                src = plane
            wide_im2col(src, colsf, geo, ld, (s - s0) * length)
    else:
        p_n = geo[11] * geo[12]
        for s in range(s0, s1):
            im2col(x[s], colsf, geo, ld, (s - s0) * p_n)


@njit(cache=True)
def forward_chunk(x, w2, bias, y, s0, s1, cols, stage, plane, act, geo):
    # x [N, C·H·W]; w2 [O, K]; bias [O] or empty; y [N, O, P]; samples [s0, s1) with
    # cols [C·kh·kw, >= S·width] and stage [O, >= S·width] (unused when direct); plane: the
    # zero-bordered input plane of a padded wide layer
    c, h, w = geo[0], geo[1], geo[2]
    groups = geo[13]
    og, k = w2.shape[0] // groups, w2.shape[1]
    p_n = y.shape[2]
    if is_direct(geo):
        for s in range(s0, s1):
            xs = x[s].reshape(c, h * w)
            for g in range(groups):
                gs = slice(g * og, (g + 1) * og)
                gemm(w2[gs], xs[g * k : (g + 1) * k], y[s, gs], False, False, 1.0, 0.0)
            ys = y[s].reshape(-1)
            apply_rows(ys, 0, p_n, ys, p_n, bias, act, p_n)
        return
    wide = is_wide(geo)
    length = wide_dims(geo)[2]
    per = length if wide else p_n
    width = (s1 - s0) * per
    ld = cols.shape[1]
    fill_columns(x, s0, s1, cols.reshape(-1), ld, plane, geo)
    for g in range(groups):
        gs = slice(g * og, (g + 1) * og)
        gemm(w2[gs], cols[g * k : (g + 1) * k, :width], stage[gs, :width], False, False, 1.0, 0.0)
    stagef = stage.reshape(-1)
    for s in range(s0, s1):
        if not wide:
            apply_rows(stagef, (s - s0) * p_n, ld, y[s].reshape(-1), p_n, bias, act, p_n)
        else:
            wide_out(stagef, ld, (s - s0) * length, y[s].reshape(-1), bias, act, geo)


@njit(cache=True)
def wide_out(stagef, ld, base, yf, bias, act, geo):
    """One sample's outputs yf (flat O·Ho·Wo) = act(stage + bias) from a wide stage (flat, row o
    at o·ld, the sample's columns from base): output row i is the run at i·Wp, the rest is junk."""
    ho, wo = geo[11], geo[12]
    wp = wide_dims(geo)[1]
    add = bias.size > 0
    for o in range(yf.size // (ho * wo)):
        bo = bias[o] if add else yf.dtype.type(0)
        for i in range(ho):
            copy_act(stagef, o * ld + base + i * wp, yf, (o * ho + i) * wo, wo, bo, add, act)


@njit(cache=True, parallel=True)
def forward_cpu(x, w2, bias, y, cols, stages, planes, chunk, act, geo):
    # T = cols.shape[0] threads: thread t convolves samples [t·N/T, (t+1)·N/T) in chunks of
    # `chunk` samples, with its column matrix cols[t], stage stages[t] and plane planes[t]
    nt, n = cols.shape[0], x.shape[0]
    for t in prange(nt):
        planes[t] = 0  # the borders: the workspace is shared with other modules between calls
        for s0 in range(t * n // nt, (t + 1) * n // nt, chunk):
            s1 = min(s0 + chunk, (t + 1) * n // nt)
            forward_chunk(x, w2, bias, y, s0, s1, cols[t], stages[t], planes[t], act, geo)


# -- the forward by kernel rows ("shifted rows"), a stride-1, one-group layer ----------------------
#
# The wide column matrix repeats each plane kh·kw times; its rows (c, u, v) for one u are the rows
# (c, v) of u = 0 shifted by d_h·u·Wp columns. So the forward keeps only the kw shifted copies
# rows[(c, v), s·pitch + q] = plane_s[c, q + d_w·v] (pitch = Hp·Wp) and runs kh GEMMs
#     stage[:, :width] (+)= Wr[u] [O, C·kw] @ rows[:, d_h·u·Wp : d_h·u·Wp + width]
# with Wr[u][o, c·kw + v] = W[o, c, u, v]: the copy is kh times smaller and K = C·kw (96 for a
# 32-channel 3x3 layer) runs faster in OpenBLAS than K = C·kh·kw (288) here (conv2d's docstring).


@njit(cache=True)
def shifted_rows(x, s0, s1, rows, plane, geo):
    """rows [C·kw, >= S·pitch] of samples [s0, s1): row (c, v) holds each sample's plane c shifted
    by d_w·v (its last d_w·v values zero; they only feed junk outputs)."""
    nc, kw, dw = geo[0], geo[4], geo[8]
    hp, wp, _ = wide_dims(geo)
    size, ld = hp * wp, rows.shape[1]
    padded = is_padded(geo)
    rf = rows.reshape(-1)
    for s in range(s0, s1):
        src = x[s]
        if padded:
            plane_copy(x[s], plane, geo, True, False)
            src = plane
        for c in range(nc):
            for v in range(kw):
                sh = dw * v
                b = uint64((c * kw + v) * ld + (s - s0) * size)
                a = uint64(c * size + sh)
                for q in range(uint64(size - sh)):
                    rf[b + q] = src[a + q]
                for q in range(uint64(size - sh), uint64(size)):
                    rf[b + q] = 0


@njit(cache=True)
def forward_rows_chunk(x, wr, bias, y, s0, s1, rows, stage, plane, act, geo):
    # samples [s0, s1) by kernel rows: wr [kh, O, C·kw]; rows [C·kw, >= S·pitch]; stage [O, >= S·pitch]
    kh, dh = geo[3], geo[7]
    hp, wp, length = wide_dims(geo)
    pitch = hp * wp
    shifted_rows(x, s0, s1, rows, plane, geo)
    width = (s1 - s0 - 1) * pitch + length
    for u in range(kh):
        at = dh * u * wp
        gemm(wr[u], rows[:, at : at + width], stage[:, :width], False, False, 1.0, 0.0 if u == 0 else 1.0)
    stagef = stage.reshape(-1)
    for s in range(s0, s1):
        wide_out(stagef, stage.shape[1], (s - s0) * pitch, y[s].reshape(-1), bias, act, geo)


@njit(cache=True, parallel=True)
def forward_rows_cpu(x, w2, bias, y, rows, stages, planes, wr, act, geo):
    # as forward_cpu, by kernel rows: per thread t its shifted rows rows[t] [C·kw, S·pitch], stage
    # stages[t] [O, S·pitch] (S: the chunk), plane planes[t] and its copy of the weights wr[t]
    nc, kh, kw = geo[0], geo[3], geo[4]
    hp, wp, _ = wide_dims(geo)
    nt, n = rows.shape[0], x.shape[0]
    chunk = rows.shape[2] // (hp * wp)
    for t in prange(nt):
        planes[t] = 0
        for u in range(kh):
            for o in range(w2.shape[0]):
                for c in range(nc):
                    for v in range(kw):
                        wr[t, u, o, c * kw + v] = w2[o, (c * kh + u) * kw + v]
        for s0 in range(t * n // nt, (t + 1) * n // nt, chunk):
            s1 = min(s0 + chunk, (t + 1) * n // nt)
            forward_rows_chunk(x, wr[t], bias, y, s0, s1, rows[t], stages[t], planes[t], act, geo)


@njit(cache=True)
def gather_dy(dy, s0, s1, stage, geo):
    """The stage [O, S·width] from dy's samples [s0, s1), in the forward's column order (the
    junk columns of the wide layout zero, so they add nothing to dW or dx). Flat loops: slice
    assignments cost more than these short rows (Wo values) take to copy."""
    ho, wo = geo[11], geo[12]
    p_n = ho * wo
    _, wp, length = wide_dims(geo)
    per = length if is_wide(geo) else p_n
    row = wp if is_wide(geo) else wo
    ld = stage.shape[1]
    stagef = stage.reshape(-1)
    for s in range(s0, s1):
        dyf = dy[s].reshape(-1)
        for o in range(dy.shape[1]):
            base = o * ld + (s - s0) * per
            for i in range(ho):
                d = uint64(base + i * row)
                a = uint64((o * ho + i) * wo)
                for j in range(uint64(wo)):
                    stagef[d + j] = dyf[a + j]
                if i < ho - 1:
                    for j in range(uint64(wo), uint64(row)):
                        stagef[d + j] = 0


@njit(cache=True)
def backward_chunk(x, w2, dy, dx, dwt, s0, s1, cols, stage, plane, dplane, first, acc_dx, geo):
    # dy [N, O, P]; dx [N, C·H·W] or empty; dwt [K, O]: this thread's dWᵀ partial, written when
    # first, else added (empty: no dW); plane, dplane: a padded wide layer's planes
    c, h, w = geo[0], geo[1], geo[2]
    groups = geo[13]
    og, k = w2.shape[0] // groups, w2.shape[1]
    p_n = dy.shape[2]
    beta_w = 0.0 if first else 1.0
    if is_direct(geo):
        for s in range(s0, s1):
            xs = x[s].reshape(c, h * w)
            for g in range(groups):
                gs = slice(g * og, (g + 1) * og)
                rows = slice(g * k, (g + 1) * k)
                if dwt.size:
                    gemm(xs[rows], dy[s, gs], dwt[:, gs], False, True, 1.0, beta_w)
                if dx.size:  # a 1x1 convolution's dcols is dx[s] itself
                    dxs = dx[s].reshape(c, h * w)
                    gemm(w2[gs], dy[s, gs], dxs[rows], True, False, 1.0, 1.0 if acc_dx else 0.0)
            beta_w = 1.0
        return
    wide = is_wide(geo)
    length = wide_dims(geo)[2]
    per = length if wide else p_n
    width = (s1 - s0) * per
    ld = cols.shape[1]
    colsf = cols.reshape(-1)
    gather_dy(dy, s0, s1, stage, geo)
    if dwt.size:
        fill_columns(x, s0, s1, colsf, ld, plane, geo)
        for g in range(groups):
            # dW_gᵀ = cols_g @ stage_gᵀ: this orientation runs ~1.7x faster in OpenBLAS than the other
            gs = slice(g * og, (g + 1) * og)
            gemm(cols[g * k : (g + 1) * k, :width], stage[gs, :width], dwt[:, gs], False, True, 1.0, beta_w)
    if dx.size:
        for g in range(groups):
            gs = slice(g * og, (g + 1) * og)
            gemm(w2[gs], stage[gs, :width], cols[g * k : (g + 1) * k, :width], True, False, 1.0, 0.0)
        padded = is_padded(geo)
        for s in range(s0, s1):
            if not wide:
                if not acc_dx:
                    dx[s] = 0
                col2im(colsf, dx[s], geo, ld, (s - s0) * p_n)
            elif padded:
                dplane[:] = 0
                wide_col2im(colsf, dplane, geo, ld, (s - s0) * length)
                plane_copy(dx[s], dplane, geo, False, acc_dx)
            else:  # the plane is dx[s] itself
                if not acc_dx:
                    dx[s] = 0
                wide_col2im(colsf, dx[s], geo, ld, (s - s0) * length)


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc lets db's float64 sums vectorize
def backward_cpu(x, w2, dy, dx, dw2, db, scratch, chunk, acc_dx, geo):
    # dy [N, O, P]; dx [N, C·H·W] or empty; dw2 [O, K] or empty; db [O] or empty; scratch: per
    # thread t, its column matrix, stage and plane (as forward), the plane's gradient, and its
    # dWᵀ partial dwt[t] [K, O] (empty when dw2 is)
    cols, stages, planes, dplanes, dwt = scratch
    nt, n = cols.shape[0], dy.shape[0]
    for t in prange(nt):
        planes[t] = 0
        b0, b1 = t * n // nt, (t + 1) * n // nt
        if b0 == b1:
            dwt[t] = 0
        for s0 in range(b0, b1, chunk):
            s1 = min(s0 + chunk, b1)
            backward_chunk(
                x,
                w2,
                dy,
                dx,
                dwt[t],
                s0,
                s1,
                cols[t],
                stages[t],
                planes[t],
                dplanes[t],
                s0 == b0,
                acc_dx,
                geo,
            )
    if dw2.size:
        for o in prange(dw2.shape[0]):
            for q in range(dw2.shape[1]):
                acc = dwt[0, q, o]
                for t in range(1, nt):
                    acc += dwt[t, q, o]
                dw2[o, q] = acc
    if db.size:
        for o in prange(db.size):
            acc = 0.0
            for s in range(n):
                d = dy[s, o]
                for p in range(d.size):
                    acc += d[p]
            db[o] = acc
