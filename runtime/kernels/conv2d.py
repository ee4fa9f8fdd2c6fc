"""conv2d kernels: im2col / col2im + GEMM through BLAS (np.dot inside @njit), sample by sample.

Per sample n, a column matrix cols [C·kh·kw, Ho·Wo] (the workspace the contract declares)
holds cols[(c, u, v), (i, j)] = xpad[c, s_h·i + d_h·u, s_w·j + d_w·v]; its rows are channel-major,
so group g's rows are one contiguous block [g·K, (g+1)·K), K = C/groups·kh·kw. Then

    forward   y[n, group g]   = W_g [og, K] @ cols_g [K, Ho·Wo]           (+ b)
    backward  dW_g           += dy[n, g] @ cols_gᵀ   (cols rebuilt by im2col)
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
BLAS keeps its threads.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numba
import numpy as np
from numba import njit, prange, uint64

from ...compiler.ops.base import pair
from ...compiler.ops.conv2d import pads4
from ..binding import Binding, Thunk, nothing
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
def forward_sample(xn, w2, bias, yn, cols, geo):
    # xn [C·H·W]; w2 [O, K]; bias [O] or empty; yn [O, Ho·Wo]; cols [C·kh·kw, Ho·Wo]
    c, h, w, kh, kw, sh, sw, _, _, pt, pl, ho, wo, groups = geo
    og = w2.shape[0] // groups
    k = w2.shape[1]
    direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and ho == h and wo == w
    src = xn.reshape(c, h * w) if direct else cols
    if not direct:
        im2col(xn, cols.reshape(-1), geo)
    for g in range(groups):
        np.dot(w2[g * og : (g + 1) * og], src[g * k : (g + 1) * k], out=yn[g * og : (g + 1) * og])
    if bias.size:
        for o in range(yn.shape[0]):
            bo = bias[o]
            yo = yn[o]
            for p in range(yo.size):
                yo[p] += bo


@njit(cache=True, parallel=True)
def forward_cpu(x, w2, bias, y, cols, geo):
    # x [N, C·H·W]; y [N, O, Ho·Wo]; cols [T, C·kh·kw, Ho·Wo]: thread t convolves samples
    # [t·N/T, (t+1)·N/T) with column matrix cols[t]
    nt, n = cols.shape[0], x.shape[0]
    for t in prange(nt):
        for s in range(t * n // nt, (t + 1) * n // nt):
            forward_sample(x[s], w2, bias, y[s], cols[t], geo)


@njit(cache=True)
def backward_sample(xn, w2, dyn, dxn, dwp, cols, tmp, first, acc_dx, geo):
    # dyn [O, Ho·Wo]; dxn [C·H·W] or empty; dwp [O, K] (this thread's dW partial: written when
    # first, else added) or empty; tmp [K, O/groups]: one group's dWᵀ
    c, h, w, kh, kw, sh, sw, _, _, pt, pl, ho, wo, groups = geo
    og = w2.shape[0] // groups
    k = w2.shape[1]
    direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 and ho == h and wo == w
    colsf = cols.reshape(-1)
    if dwp.size:
        src = xn.reshape(c, h * w) if direct else cols
        if not direct:
            im2col(xn, colsf, geo)
        for g in range(groups):
            # dW_gᵀ = cols_g @ dy_gᵀ: this orientation runs ~1.5x faster in OpenBLAS than dy_g @ cols_gᵀ
            np.dot(src[g * k : (g + 1) * k], dyn[g * og : (g + 1) * og].T, out=tmp)
            for o in range(og):
                dwo = dwp[g * og + o]
                if first:
                    for q in range(k):
                        dwo[q] = tmp[q, o]
                else:
                    for q in range(k):
                        dwo[q] += tmp[q, o]
    if dxn.size:
        into_dx = direct and not acc_dx  # 1x1: dcols is dx[n] itself
        dst = dxn.reshape(c, h * w) if into_dx else cols
        for g in range(groups):
            wg = w2[g * og : (g + 1) * og]
            np.dot(wg.T, dyn[g * og : (g + 1) * og], out=dst[g * k : (g + 1) * k])
        if into_dx:
            return
        if direct:
            dxn += colsf
            return
        if not acc_dx:
            dxn[:] = 0
        col2im(colsf, dxn, geo)


@njit(cache=True, parallel=True, fastmath={"reassoc"})  # reassoc lets db's float64 sums vectorize
def backward_cpu(x, w2, dy, dx, dw2, db, cols, tmp, dwp, acc_dx, geo):
    # dy [N, O, Ho·Wo]; dx [N, C·H·W] or empty; dw2 [O, K] or empty; db [O] or empty;
    # per thread t: cols[t], tmp[t] [K, O/groups], dwp[t] [O, K] (empty when dw2 is)
    nt, n = cols.shape[0], dy.shape[0]
    no_dx = dx.reshape(-1)[:0]
    for t in prange(nt):
        s0, s1 = t * n // nt, (t + 1) * n // nt
        if s0 == s1:
            dwp[t] = 0
        for s in range(s0, s1):
            dxn = dx[s] if dx.size else no_dx
            backward_sample(x[s], w2, dy[s], dxn, dwp[t], cols[t], tmp[t], s == s0, acc_dx, geo)
    if dw2.size:
        for o in prange(dw2.shape[0]):
            for q in range(dw2.shape[1]):
                acc = dwp[0, o, q]
                for t in range(1, nt):
                    acc += dwp[t, o, q]
                dw2[o, q] = acc
    if db.size:
        for o in prange(db.size):
            acc = 0.0
            for s in range(n):
                d = dy[s, o]
                for p in range(d.size):
                    acc += d[p]
            db[o] = acc


def _openblas_threads() -> tuple[object, object] | None:
    """(set, get) of the thread count of the OpenBLAS that numba's np.dot calls (SciPy's), or None."""
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401 — loads the library numba binds np.dot to

    for path in glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs", "*openblas*")):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas_", "openblas_"):
            set_n, get_n = (
                getattr(lib, prefix + "set_num_threads", None),
                getattr(lib, prefix + "get_num_threads", None),
            )
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
    c, _, _, kh, kw, *_, ho, wo, groups = geo
    n = b.x[0].shape[0]
    wt = b.p["w"]
    dt = wt.dtype
    o = wt.shape[0]
    w2 = view(wt, o, -1)
    x = view(b.x[0], n, -1)
    y = view(b.y, n, o, ho * wo)
    empty = np.zeros(0, dt)
    bias = b.p.get("b", empty)
    nt = max(1, min(n, numba.get_num_threads())) if _BLAS is not None else 1
    rows = c * kh * kw
    if b.ws.nbytes >= nt * rows * ho * wo * np.dtype(dt).itemsize:
        cols = view(b.workspace(dt, nt * rows * ho * wo), nt, rows, ho * wo)
    else:  # the contract's workspace holds one column matrix: threads 2..T need their own
        cols = np.empty((nt, rows, ho * wo), dt)
    wrap = one_blas_thread if nt > 1 else (lambda f: f)
    fwd = wrap(lambda: forward_cpu(x, w2, bias, y, cols, geo))
    if b.dy is None:
        return fwd, nothing
    dy = view(b.dy, *y.shape)
    dx = view(b.dx[0], *x.shape) if b.dx[0] is not None else np.zeros((0, x.shape[1]), dt)
    dwt = b.dp.get("w")
    dw2 = view(dwt, *w2.shape) if dwt is not None else np.zeros((0, w2.shape[1]), dt)
    db = b.dp.get("b")
    db = db if db is not None else empty
    # prebound once: per thread, one group's dWᵀ of one sample and the thread's dW partial
    tmp = np.empty((nt, w2.shape[1], o // groups), dt)
    dwp = np.empty((nt, dw2.shape[0], w2.shape[1]), dt)
    acc = b.acc[0]
    return fwd, wrap(lambda: backward_cpu(x, w2, dy, dx, dw2, db, cols, tmp, dwp, acc, geo))
