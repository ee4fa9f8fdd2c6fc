"""multi_head_attention kernels: projections and per-(sample, head) attention through BLAS GEMM.

Q, K, V and the context C are kept in the contract's layout [N·T, D] (head j = columns
[j·dh, (j+1)·dh)). A head's slice is a strided 2-D view (row stride D, unit column stride), which
BLAS takes as is through its leading dimension, so ``gemm`` below calls ?gemm directly (SciPy's
BLAS, the one np.dot uses) instead of np.dot: np.dot in numba copies non-contiguous operands and
cannot accumulate (no beta), while gemm(…, beta=1) sums the three input-gradient products into dx
with no temporary.

    forward   Q = xq W_qᵀ + b_q, K = xkv W_kᵀ + b_k, V = xkv W_vᵀ + b_v
              per (n, j): A = softmax(Q_j K_jᵀ / √dh  [+ causal mask])  → saved "attn"
                          C_j = A V_j
              y = C W_oᵀ + b_o
    backward  dW_o = dyᵀ C, db_o = Σ dy, dC = dy W_o
              per (n, j): dA = dC_j V_jᵀ, dV_j = Aᵀ dC_j, dS = A ⊙ (dA - rowsum(dA ⊙ A)),
                          dQ_j = dS K_j / √dh, dK_j = dSᵀ Q_j / √dh
              dW_p = dPᵀ x_p, db_p = Σ dP, dx_p (+)= dP W_p

Scratch: backward writes dC and then dQ over the saved context, dK over the saved k and dV over
the saved v (each head slice is dead once its own gradient is written), and dA/dS into the
workspace (one [Tq, Tk] block). So the saved tensors hold gradients after backward; forward
rewrites them. The kernels are serial: BLAS has the threads.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..binding import Binding, Thunk, nothing
from ._blas import gemm, project


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


@njit(cache=True, fastmath=ROW_MATH)
def softmax_rows(s, causal):
    """Row softmax of already scaled scores in place; with causal, row i keeps columns j ≤ i."""
    tq, tk = s.shape
    for i in range(tq):
        lim = min(i + 1, tk) if causal else tk
        mx = s[i, 0]
        for j in range(1, lim):
            mx = max(mx, s[i, j])
        tot = 0.0
        for j in range(lim):
            e = exp_nonpos(s[i, j] - mx)
            s[i, j] = e
            tot += e
        r = 1 / tot
        for j in range(lim):
            s[i, j] *= r
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


@njit(cache=True)
def forward_cpu(xq, xkv, wq, wk, wv, wo, bq, bk, bv, bo, q, k, v, attn, ctx, y, scale, causal):
    # xq, q, ctx, y: [N·Tq, D]; xkv, k, v: [N·Tk, D]; attn: [N, h, Tq, Tk]
    n, h, tq, tk = attn.shape
    dh = wq.shape[0] // h
    project(xq, wq, bq, q)
    project(xkv, wk, bk, k)
    project(xkv, wv, bv, v)
    for s in range(n):
        rq, rk = s * tq, s * tk
        for j in range(h):
            c0 = j * dh
            a = attn[s, j]
            gemm(q[rq : rq + tq, c0 : c0 + dh], k[rk : rk + tk, c0 : c0 + dh], a, False, True, scale, 0.0)
            softmax_rows(a, causal)
            gemm(a, v[rk : rk + tk, c0 : c0 + dh], ctx[rq : rq + tq, c0 : c0 + dh], False, False, 1.0, 0.0)
    project(ctx, wo, bo, y)


@njit(cache=True)
def backward_cpu(
    xq, xkv, wq, wk, wv, wo, q, k, v, attn, ctx, dy, ws, dxq, dxkv, dwq, dwk, dwv, dwo, dbq, dbk, dbv, dbo,
    scale, self_attn, acc_q, acc_kv,
):  # fmt: skip
    n, h, tq, tk = attn.shape
    dh = wq.shape[0] // h
    if dwo.size:
        gemm(dy, ctx, dwo, True, False, 1.0, 0.0)
    column_sums(dy, dbo)
    gemm(dy, wo, ctx, False, False, 1.0, 0.0)  # ctx ← dC
    for s in range(n):
        rq, rk = s * tq, s * tk
        for j in range(h):
            c0 = j * dh
            a = attn[s, j]
            qh = q[rq : rq + tq, c0 : c0 + dh]
            kh = k[rk : rk + tk, c0 : c0 + dh]
            vh = v[rk : rk + tk, c0 : c0 + dh]
            dch = ctx[rq : rq + tq, c0 : c0 + dh]
            gemm(dch, vh, ws, False, True, 1.0, 0.0)  # dA
            gemm(a, dch, vh, True, False, 1.0, 0.0)  # v ← dV
            softmax_rows_backward(a, ws)  # dS (the 1/√dh goes into the next two products)
            gemm(ws, kh, dch, False, False, scale, 0.0)  # ctx ← dQ
            gemm(ws, qh, kh, True, False, scale, 0.0)  # k ← dK
    column_sums(ctx, dbq)
    column_sums(k, dbk)
    column_sums(v, dbv)
    if dwq.size:
        gemm(ctx, xq, dwq, True, False, 1.0, 0.0)
    if dwk.size:
        gemm(k, xkv, dwk, True, False, 1.0, 0.0)
    if dwv.size:
        gemm(v, xkv, dwv, True, False, 1.0, 0.0)
    if dxq.size:
        gemm(ctx, wq, dxq, False, False, 1.0, 1.0 if acc_q else 0.0)
        if self_attn:
            gemm(k, wk, dxq, False, False, 1.0, 1.0)
            gemm(v, wv, dxq, False, False, 1.0, 1.0)
    if dxkv.size:
        gemm(k, wk, dxkv, False, False, 1.0, 1.0 if acc_kv else 0.0)
        gemm(v, wv, dxkv, False, False, 1.0, 1.0)


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    _, tq, d = b.x[0].shape
    tk = b.x[-1].shape[1]
    h = b.attrs["num_heads"]
    causal = bool(b.attrs["causal"])
    self_attn = len(b.x) == 1
    dt = b.y.dtype
    scale = 1.0 / math.sqrt(d // h)

    def rows(a: np.ndarray) -> np.ndarray:
        if not a.flags.c_contiguous:  # a reshape would copy, and the kernels would write the copy
            raise ValueError(f"{b.module}: kernel needs C-contiguous arrays, got strides {a.strides}")
        return a.reshape(-1, d)

    def or_empty(a: np.ndarray | None, ndim: int) -> np.ndarray:
        return a if a is not None else np.zeros((0,) * ndim, dt)

    xq, xkv = rows(b.x[0]), rows(b.x[-1])
    w = [b.p[f"w_{p}"] for p in "qkvo"]
    bias = [or_empty(b.p.get(f"b_{p}"), 1) for p in "qkvo"]
    q, k, v, ctx = (rows(b.saved[s]) for s in ("q", "k", "v", "context"))
    attn = b.saved["attn"]
    y = rows(b.y)
    fwd = lambda: forward_cpu(xq, xkv, *w, *bias, q, k, v, attn, ctx, y, scale, causal)  # noqa: E731
    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    ws = b.workspace(dt, tq * tk).reshape(tq, tk)
    dxq = rows(b.dx[0]) if b.dx[0] is not None else or_empty(None, 2)
    dxkv = rows(b.dx[1]) if not self_attn and b.dx[1] is not None else or_empty(None, 2)
    dw = [or_empty(b.dp.get(f"w_{p}"), 2) for p in "qkvo"]
    db = [or_empty(b.dp.get(f"b_{p}"), 1) for p in "qkvo"]
    acc_q, acc_kv = bool(b.acc[0]), bool(b.acc[-1])

    def bwd() -> None:
        backward_cpu(
            xq, xkv, *w, q, k, v, attn, ctx, dy, ws, dxq, dxkv, *dw, *db, scale, self_attn, acc_q, acc_kv
        )

    return fwd, bwd
