"""multi_head_attention kernels: projections through BLAS GEMM, attention fused per (sample, head).

Q, K, V and the context C are kept in the contract's layout [N·T, D] (head j = columns
[j·dh, (j+1)·dh)). A head's slice is a strided 2-D view (row stride D, unit column stride), which
BLAS takes as is through its leading dimension, so ``gemm`` calls ?gemm directly (SciPy's BLAS)
instead of np.dot, which copies such operands and cannot accumulate (no beta).

    forward   Q = xq W_qᵀ + b_q, K = xk W_kᵀ + b_k, V = xv W_vᵀ + b_v    (xk, xv: one array when shared)
              per (n, j), in a [Tq, Tk] block p: p = Q_j K_jᵀ / √dh [+ masks] [+ causal mask],
                          p ← softmax(p) (row max and 1/sum saved: "softmax" [N, h, Tq, 2]), C_j = p V_j
              y = C W_oᵀ + b_o
    backward  dW_o = dyᵀ C, db_o = Σ dy, dC = dy W_o
              per (n, j): A = exp(Q_j K_jᵀ/√dh [+ masks] - max)·(1/sum) again (bitwise the forward's),
                          dA = dC_j V_jᵀ, dV_j = Aᵀ dC_j, dS = A ⊙ (dA - rowsum(dA ⊙ A)),
                          dQ_j = dS K_j / √dh, dK_j = dSᵀ Q_j / √dh
              dW_p = dPᵀ x_p, db_p = Σ dP, dx_p (+)= dP W_p   (``Layout``: which input each p reads)

Masks (``add_masks``, after the product, in forward and backward alike): key_padding [N, Tk] and
attn [N, 1 or h, Tq, Tk]; an int64 one adds -inf where nonzero, a float one its values. A row whose
every score is -inf attends to nothing: zeros, statistics (0, 0), which ``softmax_again`` turns
into zeros again (exp(-inf)·0), so its gradients are zero too (scaled_dot_product_attention's rule).

The [N, h, Tq, Tk] attention tensor is never written (FlashAttention's trade at the block level:
one more QKᵀ product and exp per score in backward, for Tq·Tk/2 fewer saved elements per head):
the score blocks live in the workspace, two per thread (A and dA/dS). Backward writes dC and then
dQ over the saved context, dK over k and dV over v (each head slice is dead once its own gradient
is written), so the saved tensors hold gradients after backward; forward rewrites them.

Threads (bind time): where the plan keeps OpenBLAS on one thread (``Binding.blas_threads`` false)
and a call has ``SPLIT_MACS`` multiply-adds, numba's threads take contiguous groups of samples from
input rows to output rows (``forward_part``: no barrier), and backward runs three passes (dW_o and
db_o split by rows, then the samples, then dW_q,k,v and their biases split by rows); every element
is computed by the same code whichever thread holds it, so the bits do not depend on the split.
Otherwise one serial call, with BLAS's threads inside each product.

On the GPU (``bind_cuda``) the layout, the saved statistics and the scratch are the same. The
projections are ``cuda_core.gemm`` (the bias broadcast first, then a beta=1 GEMM, as linear does); a
head's products run for a group of samples at once through ``cuda_core.gemm_batched`` on strided
[N, T, dh] head views and [G, Tq, Tk] score blocks in the workspace, one launch per (head, group)
and product; the workspace (two blocks per CPU thread) sets G. The row softmax (``softmax_cuda``,
causal mask and statistics included) and its backward (``softmax_backward_cuda``) give one block to
each row and reduce with ``cuda_core.block_max``/``block_sum``; ``softmax_again_cuda`` rebuilds A
from the statistics; bias gradients are ``cuda_core.row_sum``; the masks are added to a group's
scores by ``add_key_padding_cuda`` and ``add_attn_mask_cuda``.

Longer than 520 lines: the CPU and CUDA kernels of one op, which share its layout, its saved
statistics and their bitwise recomputation; split, each half would restate that contract.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import cuda, njit, prange, types
from numba.extending import intrinsic, overload

from ..binding import Binding, Thunk, nothing
from ..launch import Launch, OneBlasThread
from . import cuda_core
from ._blas import OPENBLAS, gemm, project
from ._views import as_rows, or_empty, per_sample, view
from .cuda_core import THREADS  # a shared array's shape must be a global int of this module


@njit(cache=True)
def column_sums(x, out):
    if out.size:
        out[:] = 0
        for r in range(x.shape[0]):
            out += x[r]


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the low 32 bits of the integer i."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(
            builder.trunc(args[0], ir.IntType(32)) if i.bitwidth > 32 else args[0], ir.FloatType()
        )

    return types.float32(i), codegen


_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.4426950408889634), np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2))
_EXP_Q = tuple(np.float32(c) for c in (1.6666665459e-1, 5.0000001201e-1))
_EXP_MIN = np.float32(-87.0)


@njit(cache=True, fastmath={"contract"})
def _expf_nonpos(x):
    """exp(x) for float32 x ≤ 0 (Cephes expf: 2^n · polynomial, below 1 ulp here; 0 under -87). Pure
    arithmetic, so the softmax loops vectorize: libm's expf is a call per element (4x slower)."""
    xc = max(x, _EXP_MIN)
    n = np.floor(xc * _LOG2E + np.float32(0.5))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = ((_EXP_P[0] * r + _EXP_P[1]) * r + _EXP_P[2]) * r + _EXP_P[3]
    p = ((p * r + _EXP_Q[0]) * r + _EXP_Q[1]) * (r * r) + r + np.float32(1.0)
    y = p * _f32_from_bits((np.int32(n) + 127) << 23)
    return y if x > _EXP_MIN else (np.float32(0.0) if x <= _EXP_MIN else x)  # NaN stays NaN


def exp_nonpos(x):
    """exp(x) for x ≤ 0: the vectorizable float32 version, or np.exp for float64."""
    return np.exp(x)


@overload(exp_nonpos)
def _exp_nonpos(x):
    if x == types.float32:
        return lambda x: _expf_nonpos(x)
    return lambda x: np.exp(x)


# reassociation lets the row reductions vectorize; no nnan/ninf, so NaN and inf still propagate
ROW_MATH = {"reassoc", "nsz", "contract"}


@njit(cache=True, fastmath={"nnan", *ROW_MATH})
def row_max(r, lim):
    """max(r[:lim]) as a vector reduction (nnan lets LLVM vectorize it; 1.6x the whole softmax;
    no ninf: a masked score is -inf).
    A NaN in the row may be missed here but not by the caller: exp(NaN - max) makes the row NaN."""
    mx = r[0]
    for j in range(1, lim):
        mx = max(mx, r[j])
    return mx


@njit(cache=True, fastmath=ROW_MATH)
def softmax_rows(s, causal, st):
    """Row softmax of already scaled scores in place; with causal, row i keeps columns j ≤ i.
    st[i] = (max, 1/sum) of row i in the scores' dtype: ``softmax_again`` rebuilds the same bits
    from them (the scaling here reads the stored, rounded 1/sum)."""
    tq, tk = s.shape
    for i in range(tq):
        lim = min(i + 1, tk) if causal else tk
        mx = row_max(s[i], lim)
        if mx == -np.inf:  # every key masked: the row attends to nothing (see softmax_again)
            st[i, 0] = st[i, 1] = 0
            s[i, :] = 0
            continue
        for j in range(lim):
            s[i, j] = exp_nonpos(s[i, j] - mx)
        tot = 0.0  # a loop of its own: summing inside the exp loop took 1.25x as long
        for j in range(lim):
            tot += s[i, j]
        st[i, 0] = mx
        st[i, 1] = 1 / tot
        r = st[i, 1]
        for j in range(lim):
            s[i, j] *= r
        for j in range(lim, tk):
            s[i, j] = 0


@njit(cache=True, fastmath=ROW_MATH)
def softmax_again(s, causal, st):
    """The softmax of recomputed scores from the forward's row statistics: bitwise its output
    (a fully masked row, saved as (0, 0), gives exp(-inf)·0 = 0)."""
    tq, tk = s.shape
    for i in range(tq):
        lim = min(i + 1, tk) if causal else tk
        mx, r = st[i, 0], st[i, 1]
        for j in range(lim):
            s[i, j] = exp_nonpos(s[i, j] - mx) * r
        for j in range(lim, tk):
            s[i, j] = 0


@njit(cache=True, fastmath=ROW_MATH)
def softmax_rows_backward(a, da):
    """da ← a ⊙ (da - rowsum(da ⊙ a)): the gradient of the scaled scores, in place."""
    tq, tk = a.shape
    for i in range(tq):
        dot = 0.0
        for j in range(tk):
            dot += da[i, j] * a[i, j]
        for j in range(tk):
            da[i, j] = a[i, j] * (da[i, j] - dot)


@njit(cache=True, inline="always")
def additive(m, is_bool):
    """A mask entry as a score term, PyTorch's rule: a bool (int64) mask adds -inf where nonzero,
    a float mask its value."""
    return (-np.inf if m != 0 else 0.0) if is_bool else m


@njit(cache=True)
def add_masks(p, s, j, masks):
    """p += the masks of sample s, head j. masks = (key_padding [N, S], attn [N, 1 or h, L, S],
    each empty when absent, and whether each is int64)."""
    kpm, am, kpm_bool, am_bool = masks
    tq, tk = p.shape
    if kpm.size:
        for i in range(tq):
            for c in range(tk):
                p[i, c] += additive(kpm[s, c], kpm_bool)
    if am.size:
        hj = j if am.shape[1] > 1 else 0
        for i in range(tq):
            for c in range(tk):
                p[i, c] += additive(am[s, hj, i, c], am_bool)


@njit(cache=True)
def scores(qh, kh, p, s, j, scale, masks):
    """p = Q_j K_jᵀ·scale + the masks: the scores of head j of sample s, forward and backward alike."""
    gemm(qh, kh, p, False, True, scale, 0.0)
    add_masks(p, s, j, masks)


@njit(cache=True)
def attend(q, k, v, ctx, st, p, s, j, scale, causal, masks):
    """Head j of sample s: C_j = softmax(Q_j K_jᵀ·scale + M) V_j through the score block p [L, S]."""
    tq, tk = p.shape
    dh = q.shape[1] // st.shape[1]
    rq, rk, c0 = s * tq, s * tk, j * dh
    scores(q[rq : rq + tq, c0 : c0 + dh], k[rk : rk + tk, c0 : c0 + dh], p, s, j, scale, masks)
    softmax_rows(p, causal, st[s, j])
    gemm(p, v[rk : rk + tk, c0 : c0 + dh], ctx[rq : rq + tq, c0 : c0 + dh], False, False, 1.0, 0.0)


@njit(cache=True)
def attend_backward(q, k, v, ctx, st, p, dp, s, j, scale, causal, masks):
    """Head j of sample s, backward: P again from the statistics, then dV, dS, dQ, dK, each
    written over its head slice of v, ctx (which holds dC) and k once that slice is dead."""
    tq, tk = p.shape
    dh = q.shape[1] // st.shape[1]
    rq, rk, c0 = s * tq, s * tk, j * dh
    qh = q[rq : rq + tq, c0 : c0 + dh]
    kh = k[rk : rk + tk, c0 : c0 + dh]
    vh = v[rk : rk + tk, c0 : c0 + dh]
    dch = ctx[rq : rq + tq, c0 : c0 + dh]
    scores(qh, kh, p, s, j, scale, masks)
    softmax_again(p, causal, st[s, j])  # P
    gemm(dch, vh, dp, False, True, 1.0, 0.0)  # dP
    gemm(p, dch, vh, True, False, 1.0, 0.0)  # v ← dV
    softmax_rows_backward(p, dp)  # dS (the 1/√dh goes into the next two products; masked: 0)
    gemm(dp, kh, dch, False, False, scale, 0.0)  # ctx ← dQ
    gemm(dp, qh, kh, True, False, scale, 0.0)  # k ← dK


@njit(cache=True)
def part(size, t, nt):
    """[lo, hi) of part t of nt of range(size)."""
    return t * size // nt, (t + 1) * size // nt


@njit(cache=True)
def gemm_rows(a, b, c, ta, tb, alpha, beta, t, nt):
    """Part t of nt of ``gemm``: rows [lo, hi) of c (columns of a when ta), so nt threads write
    disjoint parts and each element is computed as by one whole call."""
    lo, hi = part(c.shape[0], t, nt)
    gemm(a[:, lo:hi] if ta else a[lo:hi], b, c[lo:hi], ta, tb, alpha, beta)


@njit(cache=True)
def forward_part(xs, ws_, bs, q, k, v, st, ctx, y, ws, scale, causal, masks, t, nt):
    # xs = (xq [N·L, E], xk [N·S, kdim], xv [N·S, vdim]); ws_ = (W_q, W_k, W_v, W_o), bs their
    # biases; q, ctx, y: [N·L, E]; k, v: [N·S, E]; st: [N, h, L, 2]; ws: [≥ nt, 2, L, S].
    # Part t takes samples [s0, s1) from input rows to output rows: no barrier between threads,
    # and no score block outside its own ws[t, 0].
    n, h, tq, _ = st.shape
    tk = ws.shape[3]
    s0, s1 = part(n, t, nt)
    project(xs[0][s0 * tq : s1 * tq], ws_[0], bs[0], q[s0 * tq : s1 * tq])
    project(xs[1][s0 * tk : s1 * tk], ws_[1], bs[1], k[s0 * tk : s1 * tk])
    project(xs[2][s0 * tk : s1 * tk], ws_[2], bs[2], v[s0 * tk : s1 * tk])
    for s in range(s0, s1):
        for j in range(h):
            attend(q, k, v, ctx, st, ws[t, 0], s, j, scale, causal, masks)
    project(ctx[s0 * tq : s1 * tq], ws_[3], bs[3], y[s0 * tq : s1 * tq])


@njit(cache=True)
def backward_out(ctx, dy, dwo, dbo, t, nt):
    """Backward, first pass (C is overwritten next): part t of dW_o = dyᵀ C and db_o."""
    if dwo.size:
        gemm_rows(dy, ctx, dwo, True, False, 1.0, 0.0, t, nt)
    c0, c1 = part(dbo.size, t, nt)
    column_sums(dy[:, c0:c1], dbo[c0:c1])


@njit(cache=True)
def backward_heads(w, q, k, v, st, ctx, dy, ws, dxs, flags, masks, t, nt):
    """Backward, second pass over the samples of part t: dC = dy W_o over C, the heads, dx.
    dxs = (targets of dQ W_q, dK W_k, dV W_v): the same array where inputs are shared (empty
    where not needed); flags = (scale, causal, and the beta of each of the three products)."""
    scale, causal, beta_q, beta_k, beta_v = flags
    n, h, tq, _ = st.shape
    tk = ws.shape[3]
    s0, s1 = part(n, t, nt)
    q0, q1, k0, k1 = s0 * tq, s1 * tq, s0 * tk, s1 * tk
    gemm(dy[q0:q1], w[3], ctx[q0:q1], False, False, 1.0, 0.0)  # ctx ← dC
    for s in range(s0, s1):
        for j in range(h):
            attend_backward(q, k, v, ctx, st, ws[t, 0], ws[t, 1], s, j, scale, causal, masks)
    if dxs[0].size:
        gemm(ctx[q0:q1], w[0], dxs[0][q0:q1], False, False, 1.0, beta_q)
    if dxs[1].size:  # a self-attention's dx rows [k0, k1) are [q0, q1): L = S
        gemm(k[k0:k1], w[1], dxs[1][k0:k1], False, False, 1.0, beta_k)
    if dxs[2].size:
        gemm(v[k0:k1], w[2], dxs[2][k0:k1], False, False, 1.0, beta_v)


@njit(cache=True)
def backward_in(xs, ctx, k, v, dw, db, t, nt):
    """Backward, last pass: part t of dW_p = dPᵀ x_p and db_p (dQ, dK, dV in ctx, k, v)."""
    for grad, x, dwp, dbp in ((ctx, xs[0], dw[0], db[0]), (k, xs[1], dw[1], db[1]), (v, xs[2], dw[2], db[2])):
        if dwp.size:
            gemm_rows(grad, x, dwp, True, False, 1.0, 0.0, t, nt)
        c0, c1 = part(dbp.size, t, nt)
        column_sums(grad[:, c0:c1], dbp[c0:c1])


# The launches take flat arguments (runtime.wholestep names each array); the kernels group them.


@njit(cache=True)
def forward_cpu(
    xq, xk, xv, wq, wk, wv, wo, bq, bk, bv, bo, q, k, v, st, ctx, y, ws, scale, causal,
    kpm, am, kpm_bool, am_bool,
):  # fmt: skip
    masks = (kpm, am, kpm_bool, am_bool)
    forward_part(
        (xq, xk, xv), (wq, wk, wv, wo), (bq, bk, bv, bo), q, k, v, st, ctx, y, ws, scale, causal, masks, 0, 1
    )


@njit(cache=True, parallel=True)
def forward_par(
    xq, xk, xv, wq, wk, wv, wo, bq, bk, bv, bo, q, k, v, st, ctx, y, ws, scale, causal,
    kpm, am, kpm_bool, am_bool, nt,
):  # fmt: skip
    masks = (kpm, am, kpm_bool, am_bool)
    xs, w, bs = (xq, xk, xv), (wq, wk, wv, wo), (bq, bk, bv, bo)
    for t in prange(nt):
        forward_part(xs, w, bs, q, k, v, st, ctx, y, ws, scale, causal, masks, t, nt)


@njit(cache=True)
def backward_cpu(
    xq, xk, xv, wq, wk, wv, wo, q, k, v, st, ctx, dy, ws, dxq, dxk, dxv,
    dwq, dwk, dwv, dwo, dbq, dbk, dbv, dbo,
    scale, causal, beta_q, beta_k, beta_v, kpm, am, kpm_bool, am_bool,
):  # fmt: skip
    masks = (kpm, am, kpm_bool, am_bool)
    flags = (scale, causal, beta_q, beta_k, beta_v)
    backward_out(ctx, dy, dwo, dbo, 0, 1)
    backward_heads((wq, wk, wv, wo), q, k, v, st, ctx, dy, ws, (dxq, dxk, dxv), flags, masks, 0, 1)
    backward_in((xq, xk, xv), ctx, k, v, (dwq, dwk, dwv), (dbq, dbk, dbv), 0, 1)


@njit(cache=True, parallel=True)
def backward_par(
    xq, xk, xv, wq, wk, wv, wo, q, k, v, st, ctx, dy, ws, dxq, dxk, dxv,
    dwq, dwk, dwv, dwo, dbq, dbk, dbv, dbo,
    scale, causal, beta_q, beta_k, beta_v, kpm, am, kpm_bool, am_bool, nt,
):  # fmt: skip
    masks = (kpm, am, kpm_bool, am_bool)
    flags = (scale, causal, beta_q, beta_k, beta_v)
    w, dxs = (wq, wk, wv, wo), (dxq, dxk, dxv)
    for t in prange(nt):
        backward_out(ctx, dy, dwo, dbo, t, nt)
    for t in prange(nt):
        backward_heads(w, q, k, v, st, ctx, dy, ws, dxs, flags, masks, t, nt)
    for t in prange(nt):
        backward_in((xq, xk, xv), ctx, k, v, (dwq, dwk, dwv), (dbq, dbk, dbv), t, nt)


#: Multiply-adds per call from which attention splits its samples over numba's threads (each
#: GEMM on one BLAS thread), where the plan leaves BLAS one thread (``Binding.blas_threads``
#: false), as linear's SPLIT_MACS.
SPLIT_MACS = 1 << 24


class Layout:
    """A binding's sizes and the roles of its inputs (bind time; CPU and GPU alike): data inputs
    q, k, v (index per role: shared ones repeat), the masks, and where each projection's input
    gradient goes with which beta (1 where an earlier product or step wrote it)."""

    def __init__(self, b: Binding) -> None:
        masks = list(b.attrs.get("masks") or [])
        self.n, self.tq, self.d = b.x[0].shape
        self.data = data = len(b.x) - len(masks)
        self.roles = (0, min(1, data - 1), data - 1)  # input index of q, k, v
        self.tk = b.x[self.roles[1]].shape[1]
        self.widths = tuple(b.x[i].shape[2] for i in self.roles)
        self.h = b.attrs["num_heads"]
        self.causal = bool(b.attrs["causal"])
        self.scale = 1.0 / math.sqrt(self.d // self.h)
        self.kpm = b.x[data + masks.index("key_padding")] if "key_padding" in masks else None
        self.am = b.x[data + masks.index("attn")] if "attn" in masks else None
        self.betas = []
        seen: set[int] = set()
        for i in self.roles:
            self.betas.append(1.0 if (b.acc[i] or i in seen) else 0.0)
            seen.add(i)

    def attn_heads(self) -> int:
        """The attn mask's head axis: 1 (one for all heads) or h."""
        return self.am[0].size // (self.tq * self.tk) if self.am is not None else 1


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    lay = Layout(b)
    n, tq, tk, d = lay.n, lay.tq, lay.tk, lay.d
    dt = b.y.dtype
    kdim, vdim = lay.widths[1], lay.widths[2]
    # Threads: numba's over groups of samples, or BLAS's inside each product (the plan's choice,
    # Binding.blas_threads), never both. One thread per group, as many as the workspace holds.
    block = 2 * tq * tk
    macs = n * (2 * tq * d + tk * (kdim + vdim)) * d + 2 * n * tq * tk * d
    split = not b.blas_threads and macs >= SPLIT_MACS
    nt = max(1, min(n, numba.get_num_threads(), b.ws.nbytes // (dt.itemsize * block))) if split else 1
    ws = b.workspace(dt, nt * block).reshape(nt, 2, tq, tk)

    def rows(a: np.ndarray) -> np.ndarray:
        return as_rows(a, d)

    xs = [as_rows(b.x[i], w) for i, w in zip(lay.roles, lay.widths, strict=True)]
    w = [b.p[f"w_{p}"] for p in "qkvo"]
    bias = [or_empty(b.p.get(f"b_{p}"), dt) for p in "qkvo"]
    q, k, v, ctx = (rows(b.saved[s]) for s in ("q", "k", "v", "context"))
    st = b.saved["softmax"]
    y = rows(b.y)
    kpm = per_sample(lay.kpm) if lay.kpm is not None else or_empty(None, dt, 2)
    am = view(lay.am, n, lay.attn_heads(), tq, tk) if lay.am is not None else or_empty(None, dt, 4)
    masks = (kpm, am, bool(kpm.dtype == np.int64), bool(am.dtype == np.int64))
    launch = OneBlasThread if OPENBLAS is not None and not b.blas_threads else Launch
    fargs = (*xs, *w, *bias, q, k, v, st, ctx, y, ws, lay.scale, lay.causal, *masks)
    fwd = launch(forward_par, *fargs, nt) if nt > 1 else launch(forward_cpu, *fargs)
    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    dxs = [
        as_rows(b.dx[i], wd) if b.dx[i] is not None else or_empty(None, dt, 2)
        for i, wd in zip(lay.roles, lay.widths, strict=True)
    ]
    dw = [or_empty(b.dp.get(f"w_{p}"), dt, 2) for p in "qkvo"]
    db = [or_empty(b.dp.get(f"b_{p}"), dt) for p in "qkvo"]
    args = (*xs, *w, q, k, v, st, ctx, dy, ws, *dxs, *dw, *db, lay.scale, lay.causal, *lay.betas, *masks)
    if nt > 1:
        return fwd, launch(backward_par, *args, nt)
    return fwd, launch(backward_cpu, *args)


# -- CUDA ------------------------------------------------------------------------------------------


@cuda.jit
def broadcast_rows_cuda(bias, y):
    # y[r, :] = bias for every row: a projection's bias, before the beta=1 GEMM adds x Wᵀ
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i // bias.size, i % bias.size] = bias[i % bias.size]


@cuda.jit
def softmax_cuda(s, st, causal):
    # block r: row (g, i) = divmod(r, Tq) of the scores [G, Tq, Tk], as softmax_rows: exp in the
    # scores' dtype, the sum in float64, st[g, i] = (max, 1/sum); with causal, columns j > i are 0
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    g, i = r // s.shape[1], r % s.shape[1]
    tk = s.shape[2]
    lim = min(i + 1, tk) if causal else tk
    m = -math.inf
    for j in range(t, lim, nt):
        m = max(m, s[g, i, j])
    mx = s.dtype.type(cuda_core.block_max(buf, m))  # exact: the max is one of the scores
    if mx == -math.inf:  # every key masked: exps 0 and st (0, 0), as softmax_rows
        mx = 0
    tot = 0.0
    for j in range(t, lim, nt):
        e = math.exp(s[g, i, j] - mx)
        s[g, i, j] = e
        tot += e
    tot = cuda_core.block_sum(buf, tot)  # ≥ 1 (the max's exp) unless every key is masked
    inv = s.dtype.type(1.0 / tot if tot > 0 else 0.0)  # rounded as st keeps it
    if t == 0:
        st[g, i, 0] = mx
        st[g, i, 1] = inv
    for j in range(t, lim, nt):  # the columns this thread wrote above: no barrier needed
        s[g, i, j] *= inv
    for j in range(lim + t, tk, nt):
        s[g, i, j] = 0


@cuda.jit
def softmax_again_cuda(s, st, causal):
    # the softmax of recomputed scores [G, Tq, Tk] from softmax_cuda's statistics, in its order
    # of operations (exp stored, then scaled), so the same values
    tq, tk = s.shape[1], s.shape[2]
    for x in range(cuda.grid(1), s.size, cuda.gridsize(1)):
        g, i, j = x // (tq * tk), (x // tk) % tq, x % tk
        if j < (min(i + 1, tk) if causal else tk):
            s[g, i, j] = math.exp(s[g, i, j] - st[g, i, 0])
            s[g, i, j] *= st[g, i, 1]
        else:
            s[g, i, j] = 0


@cuda.jit
def softmax_backward_cuda(a, da):
    # block r: row (g, i) = divmod(r, Tq) of [G, Tq, Tk] views: da ← a ⊙ (da - rowsum(da ⊙ a))
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    g, i = r // a.shape[1], r % a.shape[1]
    dot = 0.0
    for j in range(t, a.shape[2], nt):
        dot += da[g, i, j] * a[g, i, j]
    dot = cuda_core.block_sum(buf, dot)
    for j in range(t, a.shape[2], nt):
        da[g, i, j] = a[g, i, j] * (da[g, i, j] - dot)


@cuda.jit
def add_key_padding_cuda(s, m, is_bool):
    # scores [G, L, S] += key-padding mask [G, S] (every query), by ``additive``'s rule
    tq, tk = s.shape[1], s.shape[2]
    for x in range(cuda.grid(1), s.size, cuda.gridsize(1)):
        g, i, j = x // (tq * tk), (x // tk) % tq, x % tk
        s[g, i, j] += (-math.inf if m[g, j] != 0 else 0.0) if is_bool else m[g, j]


@cuda.jit
def add_attn_mask_cuda(s, m, hj, is_bool):
    # scores [G, L, S] += attn mask [G, 1 or h, L, S] at head hj, by ``additive``'s rule
    tq, tk = s.shape[1], s.shape[2]
    for x in range(cuda.grid(1), s.size, cuda.gridsize(1)):
        g, i, j = x // (tq * tk), (x // tk) % tq, x % tk
        s[g, i, j] += (-math.inf if m[g, hj, i, j] != 0 else 0.0) if is_bool else m[g, hj, i, j]


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    lay = Layout(b)
    n, tq, tk, d, h = lay.n, lay.tq, lay.tk, lay.d, lay.h
    dh = d // h
    causal, scale = lay.causal, lay.scale
    dt = b.y.dtype
    if n > cuda_core.GRID_YZ:  # the head products run the batch along gridDim.z: fail at bind, not mid-run
        raise NotImplementedError(f"{b.module}: batch {n} exceeds {cuda_core.GRID_YZ} on the GPU")

    def rows(a: Any) -> Any:
        return cuda_core.rows(a, d)

    xq, xk, xv = (cuda_core.rows(b.x[i], wd) for i, wd in zip(lay.roles, lay.widths, strict=True))
    w = [b.p[f"w_{p}"] for p in "qkvo"]
    bias = [b.p.get(f"b_{p}") for p in "qkvo"]
    q3, k3, v3, c3 = (b.saved[s] for s in ("q", "k", "v", "context"))  # [N, T, D]
    q, k, v, ctx = (rows(a) for a in (q3, k3, v3, c3))
    st = b.saved["softmax"]  # [N, h, Tq, 2]
    y = rows(b.y)
    heads = [slice(j * dh, (j + 1) * dh) for j in range(h)]
    qh, kh, vh, ch = ([a[:, :, c] for c in heads] for a in (q3, k3, v3, c3))  # [N, T, dh] head views
    grid_q, grid_kv = cuda_core.grid_1d(q.size), cuda_core.grid_1d(k.size)
    threads_k = cuda_core.reduce_threads(tk)
    kpm = lay.kpm.reshape(n, tk) if lay.kpm is not None else None
    am = lay.am.reshape(n, lay.attn_heads(), tq, tk) if lay.am is not None else None

    def add_masks(sc: Any, g: slice, j: int) -> None:
        """The masks of the samples g, head j, onto their scores sc [G, L, S]."""
        grid = cuda_core.grid_1d(sc.size)
        if kpm is not None:
            add_key_padding_cuda[grid[0], grid[1]](sc, kpm[g], bool(kpm.dtype == np.int64))
        if am is not None:
            hj = j if am.shape[1] > 1 else 0
            add_attn_mask_cuda[grid[0], grid[1]](sc, am[g], hj, bool(am.dtype == np.int64))

    # The scores of a group of samples of one head at a time live in the workspace ([G, Tq, Tk];
    # backward needs A and its gradient, so half as many samples): the contract reserves two
    # blocks per CPU thread, more when another module needs a larger workspace.
    per_block = dt.itemsize * tq * tk
    if b.ws.nbytes < 2 * per_block:
        raise ValueError(f"{b.module}: workspace of {b.ws.nbytes} bytes is smaller than two [Tq, Tk] blocks")

    def groups(size: int) -> list[tuple[slice, Any]]:
        """(samples, their score blocks) per group of ``size`` samples; bind time."""
        ws = b.workspace(dt, size * tq * tk).reshape(size, tq, tk)
        return [(slice(s0, min(n, s0 + size)), ws[: min(n, s0 + size) - s0]) for s0 in range(0, n, size)]

    fwd_chunks = [
        (j, g, qh[j][g], kh[j][g], vh[j][g], ch[j][g], st[g, j], sc)
        for j in range(h)
        for g, sc in groups(min(n, b.ws.nbytes // per_block))
    ]

    def project(x: Any, wp: Any, bp: Any, out: Any, grid: tuple[int, int]) -> None:
        if bp is None:
            cuda_core.gemm(False, True, 1.0, x, wp, 0.0, out)
        else:
            broadcast_rows_cuda[grid[0], grid[1]](bp, out)
            cuda_core.gemm(False, True, 1.0, x, wp, 1.0, out)

    def fwd() -> None:
        project(xq, w[0], bias[0], q, grid_q)
        project(xk, w[1], bias[1], k, grid_kv)
        project(xv, w[2], bias[2], v, grid_kv)
        for j, g, qj, kj, vj, cj, stj, sc in fwd_chunks:
            cuda_core.gemm_batched(False, True, scale, qj, kj, 0.0, sc)  # S = Q_j K_jᵀ / √dh
            add_masks(sc, g, j)
            softmax_cuda[sc.shape[0] * tq, threads_k](sc, stj, causal)
            cuda_core.gemm_batched(False, False, 1.0, sc, vj, 0.0, cj)  # C_j = A V_j
        project(ctx, w[3], bias[3], y, grid_q)

    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    size = min(n, b.ws.nbytes // (2 * per_block))
    whole = b.workspace(dt, 2 * size * tq * tk).reshape(2, size, tq, tk)
    chunks = []  # (head, samples, A, dA/dS, statistics, dC→dQ, Q, K→dK, V→dV) per (head, group): bind time
    for j in range(h):
        for s0 in range(0, n, size):
            g = slice(s0, min(n, s0 + size))
            m = g.stop - s0
            chunks.append(
                (j, g, whole[0, :m], whole[1, :m], st[g, j], ch[j][g], qh[j][g], kh[j][g], vh[j][g])
            )
    grids = {a.shape[0]: cuda_core.grid_1d(a.size) for _, _, a, *_ in chunks}
    # where dQ W_q, dK W_k and dV W_v go (one array where inputs are shared) and with which beta
    dxs = [
        cuda_core.rows(b.dx[i], wd) if b.dx[i] is not None else None
        for i, wd in zip(lay.roles, lay.widths, strict=True)
    ]
    dw = [b.dp.get(f"w_{p}") for p in "qkvo"]
    db = [b.dp.get(f"b_{p}") for p in "qkvo"]

    def bwd() -> None:
        if dw[3] is not None:
            cuda_core.gemm(True, False, 1.0, dy, ctx, 0.0, dw[3])
        if db[3] is not None:
            cuda_core.row_sum(dy, db[3])
        cuda_core.gemm(False, False, 1.0, dy, w[3], 0.0, ctx)  # ctx ← dC
        for (
            j,
            g,
            a,
            dsc,
            stj,
            dc,
            qj,
            kj,
            vj,
        ) in chunks:  # each slice is dead once its own gradient is written
            cuda_core.gemm_batched(False, True, scale, qj, kj, 0.0, a)  # S again
            add_masks(a, g, j)
            grid = grids[a.shape[0]]
            softmax_again_cuda[grid[0], grid[1]](a, stj, causal)  # A
            cuda_core.gemm_batched(False, True, 1.0, dc, vj, 0.0, dsc)  # dA = dC_j V_jᵀ
            cuda_core.gemm_batched(True, False, 1.0, a, dc, 0.0, vj)  # v ← dV = Aᵀ dC_j
            softmax_backward_cuda[a.shape[0] * tq, threads_k](a, dsc)  # dS (1/√dh: next two)
            cuda_core.gemm_batched(False, False, scale, dsc, kj, 0.0, dc)  # ctx ← dQ = dS K_j / √dh
            cuda_core.gemm_batched(True, False, scale, dsc, qj, 0.0, kj)  # k ← dK = dSᵀ Q_j / √dh
        for grad, dbp in ((ctx, db[0]), (k, db[1]), (v, db[2])):
            if dbp is not None:
                cuda_core.row_sum(grad, dbp)
        for grad, x, dwp in ((ctx, xq, dw[0]), (k, xk, dw[1]), (v, xv, dw[2])):
            if dwp is not None:
                cuda_core.gemm(True, False, 1.0, grad, x, 0.0, dwp)
        for grad, wp, dx, beta in zip((ctx, k, v), w[:3], dxs, lay.betas, strict=True):
            if dx is not None:
                cuda_core.gemm(False, False, 1.0, grad, wp, beta, dx)

    return fwd, bwd
