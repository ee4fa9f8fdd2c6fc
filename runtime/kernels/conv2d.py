"""conv2d kernels: im2col / col2im + GEMM through BLAS (_blas.gemm inside @njit), sample by sample.

Per sample n, a column matrix cols [C·kh·kw, Ho·Wo] (the workspace the contract declares)
holds cols[(c, u, v), (i, j)] = xpad[c, s_h·i + d_h·u, s_w·j + d_w·v]; its rows are channel-major,
so group g's rows are one contiguous block [g·K, (g+1)·K), K = C/groups·kh·kw. Then

    forward   y[n, group g]   = W_g [og, K] @ cols_g [K, Ho·Wo]           (+ b)
    backward  dW_gᵀ          += cols_g @ dy[n, g]ᵀ  (cols rebuilt by im2col; GEMM with beta = 1)
              dcols_g         = W_gᵀ @ dy[n, g]      (into the same workspace)
              dx[n]          += col2im(dcols)

A 1x1, stride-1, unpadded convolution needs no im2col (x[n] already is [C, H·W]).

The copy loops run over flat arrays with unsigned offsets: numba's wraparound check on signed
indices blocks vectorization (about 4x slower im2col here).

Threads: the batch is split into T contiguous blocks of samples, one per numba thread (prange),
each with its own column matrix and dW partial, while BLAS is set to one thread for the call
(OpenBLAS's thread count is restored after it). Per-sample GEMMs are small ([32 x 288] @ [288 x
1024] for a 32-channel 3x3 layer on 32x32): splitting each over two BLAS threads scaled poorly
and collapsed when the cores were shared (seconds per step), while one sample per core keeps
every stage (im2col, GEMMs, col2im) parallel. Results are deterministic for a given T (dW sums
the T partials in order). When OpenBLAS's thread count cannot be set (another BLAS), T = 1 and
BLAS keeps its threads. Thread 0 uses the workspace; threads 1..T-1 use the rest of it when it is
large enough, else column matrices allocated once at bind time.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numba
import numpy as np
from numba import njit, prange, uint64

from ...compiler.ops.base import pair
from ...compiler.ops.conv2d import pads4
from ..binding import Binding, Thunk, nothing
from ._blas import gemm
from ._conv_common import view


@njit(cache=True)
def valid_range(off, s, size, n_out):
    """[j0, j1): the outputs j < n_out whose tap s·j + off lies inside [0, size)."""
    j0 = 0
    if off < 0:
        j0 = min(n_out, (s - 1 - off) // s)
    j1 = max(j0, min(n_out, (size - off + s - 1) // s))
    return j0, j1


@njit(cache=True)
def im2col(xf, colsf, geo):
    """One sample's column matrix (flat) from its input (flat C·H·W)."""
    nc, h, w, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, _ = geo
    howo = ho * wo
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
                    b = uint64(r * howo + i * wo)
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
def col2im(colsf, dxf, geo):
    """dx (flat C·H·W of one sample) += the column matrix folded back onto the input."""
    c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo, _ = geo
    howo = ho * wo
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
                    bj = uint64(r * howo + i * wo + j0)
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
def forward_sample(xn, w2, bias, yn, cols, geo):
    # xn [C·H·W]; w2 [O, K]; bias [O] or empty; yn [O, Ho·Wo]; cols [C·kh·kw, Ho·Wo]
    c, h, w = geo[0], geo[1], geo[2]
    groups = geo[13]
    og, k = w2.shape[0] // groups, w2.shape[1]
    direct = is_direct(geo)
    src = xn.reshape(c, h * w) if direct else cols
    if not direct:
        im2col(xn, cols.reshape(-1), geo)
    for g in range(groups):
        gs = slice(g * og, (g + 1) * og)
        gemm(w2[gs], src[g * k : (g + 1) * k], yn[gs], False, False, 1.0, 0.0)
    if bias.size:
        for o in range(yn.shape[0]):
            bo = bias[o]
            yo = yn[o]
            for p in range(yo.size):
                yo[p] += bo


@njit(cache=True, parallel=True)
def forward_cpu(x, w2, bias, y, cols, more_cols, geo):
    # x [N, C·H·W]; y [N, O, Ho·Wo]; T = 1 + len(more_cols) threads: thread t convolves samples
    # [t·N/T, (t+1)·N/T) with column matrix cols [C·kh·kw, Ho·Wo] (t = 0) or more_cols[t - 1]
    nt, n = 1 + more_cols.shape[0], x.shape[0]
    for t in prange(nt):
        ct = cols if t == 0 else more_cols[t - 1]
        for s in range(t * n // nt, (t + 1) * n // nt):
            forward_sample(x[s], w2, bias, y[s], ct, geo)


@njit(cache=True)
def backward_sample(xn, w2, dyn, dxn, dwt, cols, first, acc_dx, geo):
    # dyn [O, Ho·Wo]; dxn [C·H·W] or empty; dwt [K, O]: this thread's dWᵀ partial, written when
    # first, else added (empty: no dW)
    c, h, w = geo[0], geo[1], geo[2]
    groups = geo[13]
    og, k = w2.shape[0] // groups, w2.shape[1]
    direct = is_direct(geo)
    if dwt.size:
        src = xn.reshape(c, h * w) if direct else cols
        if not direct:
            im2col(xn, cols.reshape(-1), geo)
        for g in range(groups):
            # dW_gᵀ = cols_g @ dy_gᵀ: this orientation runs ~1.7x faster in OpenBLAS than dy_g @ cols_gᵀ
            gs = slice(g * og, (g + 1) * og)
            gemm(src[g * k : (g + 1) * k], dyn[gs], dwt[:, gs], False, True, 1.0, 0.0 if first else 1.0)
    if dxn.size:
        # dcols_g = W_gᵀ @ dy_g; a 1x1 convolution's dcols is dx[n] itself (added into when acc)
        dst = dxn.reshape(c, h * w) if direct else cols
        beta = 1.0 if direct and acc_dx else 0.0
        for g in range(groups):
            gs = slice(g * og, (g + 1) * og)
            gemm(w2[gs], dyn[gs], dst[g * k : (g + 1) * k], True, False, 1.0, beta)
        if direct:
            return
        if not acc_dx:
            dxn[:] = 0
        col2im(cols.reshape(-1), dxn, geo)


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc lets db's float64 sums vectorize
def backward_cpu(x, w2, dy, dx, dw2, db, cols, more_cols, dwt, acc_dx, geo):
    # dy [N, O, Ho·Wo]; dx [N, C·H·W] or empty; dw2 [O, K] or empty; db [O] or empty;
    # per thread t: its column matrix (as forward) and dWᵀ partial dwt[t] [K, O] (empty when dw2 is)
    nt, n = 1 + more_cols.shape[0], dy.shape[0]
    no_dx = dx.reshape(-1)[:0]
    for t in prange(nt):
        ct = cols if t == 0 else more_cols[t - 1]
        s0, s1 = t * n // nt, (t + 1) * n // nt
        if s0 == s1:
            dwt[t] = 0
        for s in range(s0, s1):
            dxn = dx[s] if dx.size else no_dx
            backward_sample(x[s], w2, dy[s], dxn, dwt[t], ct, s == s0, acc_dx, geo)
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


def _openblas_threads() -> tuple[Any, Any] | None:
    """(set, get) of the thread count of the OpenBLAS that numba's np.dot calls, or None.

    numba binds np.dot to scipy.linalg.cython_blas; dlsym on that module's handle searches the
    libraries it links, so this finds the very OpenBLAS it uses (SciPy's wheels prefix the names)."""
    from scipy.linalg import cython_blas

    lib = ctypes.CDLL(cython_blas.__file__)
    for prefix in ("scipy_openblas_", "openblas_"):
        set_n = getattr(lib, prefix + "set_num_threads", None)
        get_n = getattr(lib, prefix + "get_num_threads", None)
        if set_n is not None and get_n is not None:
            set_n.argtypes, set_n.restype, get_n.restype = [ctypes.c_int], None, ctypes.c_int
            return set_n, get_n
    return None


_BLAS = _openblas_threads()


def one_blas_thread(kernel: Thunk) -> Thunk:
    """kernel run with OpenBLAS set to one thread, its count restored after."""
    set_n, get_n = _BLAS

    def run() -> None:
        prev = get_n()
        set_n(1)
        try:
            kernel()
        finally:
            set_n(prev)

    return run


def geometry(b: Binding) -> tuple[int, ...]:
    """(C, H, W, kh, kw, sh, sw, dh, dw, pad_top, pad_left, Ho, Wo, groups) of a binding."""
    a = b.attrs
    _, c, h, w = b.x[0].shape
    k, d = pair(a["kernel"]), pair(a["dilation"])
    s = pair(a["stride"])
    pt, _, pl, _ = pads4(a, k, d)
    ho, wo = b.y.shape[2], b.y.shape[3]
    return (c, h, w, k[0], k[1], s[0], s[1], d[0], d[1], pt, pl, ho, wo, int(a["groups"]))


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    geo = geometry(b)
    c, _, _, kh, kw, *_, ho, wo, _ = geo
    n = b.x[0].shape[0]
    wt = b.p["w"]
    dt = wt.dtype
    o = wt.shape[0]
    w2 = view(wt, o, -1)
    x = view(b.x[0], n, -1)
    y = view(b.y, n, o, ho * wo)
    empty = np.zeros(0, dt)
    bias = b.p.get("b", empty)
    size = c * kh * kw * ho * wo
    k = w2.shape[1]
    # Threads: as many as numba has, one per sample at most, and no more than
    # the workspace (sized by the contract) holds private scratch for.
    fits = b.ws.nbytes // ((size + k * o) * np.dtype(dt).itemsize)
    nt = max(1, min(n, numba.get_num_threads(), fits)) if _BLAS is not None else 1
    scratch = b.workspace(dt, nt * (size + k * o))
    both = view(scratch[: nt * size], nt, c * kh * kw, ho * wo)
    cols, more_cols = both[0], both[1:]
    dwt = view(scratch[nt * size :], nt, k, o)  # per-thread dWᵀ partials
    wrap = one_blas_thread if nt > 1 else (lambda f: f)
    fwd = wrap(lambda: forward_cpu(x, w2, bias, y, cols, more_cols, geo))
    if b.dy is None:
        return fwd, nothing
    dy = view(b.dy, *y.shape)
    dx = view(b.dx[0], *x.shape) if b.dx[0] is not None else np.zeros((0, x.shape[1]), dt)
    gw = b.dp.get("w")
    dw2 = view(gw, *w2.shape) if gw is not None else np.zeros((0, w2.shape[1]), dt)
    if gw is None:
        dwt = dwt[:, :, :0]  # frozen weights: no partials to compute
    db = b.dp.get("b")
    db = db if db is not None else empty
    acc = b.acc[0]
    return fwd, wrap(lambda: backward_cpu(x, w2, dy, dx, dw2, db, cols, more_cols, dwt, acc, geo))
