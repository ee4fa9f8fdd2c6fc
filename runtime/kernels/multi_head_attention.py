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

On the GPU (``bind_cuda``) the layout and the scratch are the same. The projections are
``cuda_core.gemm`` (the bias broadcast first, then a beta=1 GEMM, as linear does); a head's products run
for every sample at once through ``cuda_core.gemm_batched`` on strided [N, T, dh] head views and
[N, Tq, Tk] slices of the saved attention, one launch per head and product. The row softmax
(``softmax_cuda``, causal mask included) and its backward (``softmax_backward_cuda``) give one block
to each row and reduce with ``cuda_core.block_max``/``block_sum``; bias gradients are ``cuda_core.row_sum``.
Backward takes the samples of a head in groups that fill the workspace (at least h samples: the
contract reserves h·Tq·Tk elements), so dA/dS of a group is one batched product, in place like the
CPU's [Tq, Tk] block.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import cuda, njit, types
from numba.extending import intrinsic, overload

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._blas import gemm, project
from ._views import as_rows, or_empty
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
        return as_rows(a, d)

    xq, xkv = rows(b.x[0]), rows(b.x[-1])
    w = [b.p[f"w_{p}"] for p in "qkvo"]
    bias = [or_empty(b.p.get(f"b_{p}"), dt) for p in "qkvo"]
    q, k, v, ctx = (rows(b.saved[s]) for s in ("q", "k", "v", "context"))
    attn = b.saved["attn"]
    y = rows(b.y)
    fwd = lambda: forward_cpu(xq, xkv, *w, *bias, q, k, v, attn, ctx, y, scale, causal)  # noqa: E731
    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    ws = b.workspace(dt, tq * tk).reshape(tq, tk)
    dxq = rows(b.dx[0]) if b.dx[0] is not None else or_empty(None, dt, 2)
    dxkv = rows(b.dx[1]) if not self_attn and b.dx[1] is not None else or_empty(None, dt, 2)
    dw = [or_empty(b.dp.get(f"w_{p}"), dt, 2) for p in "qkvo"]
    db = [or_empty(b.dp.get(f"b_{p}"), dt) for p in "qkvo"]
    acc_q, acc_kv = bool(b.acc[0]), bool(b.acc[-1])

    def bwd() -> None:
        backward_cpu(
            xq, xkv, *w, q, k, v, attn, ctx, dy, ws, dxq, dxkv, *dw, *db, scale, self_attn, acc_q, acc_kv
        )

    return fwd, bwd


# -- CUDA ------------------------------------------------------------------------------------------


@cuda.jit
def broadcast_rows_cuda(bias, y):
    # y[r, :] = bias for every row: a projection's bias, before the beta=1 GEMM adds x Wᵀ
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[i // bias.size, i % bias.size] = bias[i % bias.size]


@cuda.jit
def softmax_cuda(s, tq, causal):
    # block r: row r of the scores [N·h·Tq, Tk] (query i = r mod Tq), as softmax_rows: exp in the
    # scores' dtype, the sum in float64; with causal, columns j > i are 0
    buf = cuda.shared.array(THREADS, np.float64)
    r, t, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    tk = s.shape[1]
    lim = min(r % tq + 1, tk) if causal else tk
    m = -math.inf
    for j in range(t, lim, nt):
        m = max(m, s[r, j])
    mx = s.dtype.type(cuda_core.block_max(buf, m))  # exact: the max is one of the scores
    tot = 0.0
    for j in range(t, lim, nt):
        e = math.exp(s[r, j] - mx)
        s[r, j] = e
        tot += e
    inv = 1.0 / cuda_core.block_sum(buf, tot)
    for j in range(t, lim, nt):  # the columns this thread wrote above: no barrier needed
        s[r, j] *= inv
    for j in range(lim + t, tk, nt):
        s[r, j] = 0


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


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    n, tq, d = b.x[0].shape
    tk = b.x[len(b.x) - 1].shape[1]  # the simulator refuses negative indexes
    h = b.attrs["num_heads"]
    dh = d // h
    causal = bool(b.attrs["causal"])
    self_attn = len(b.x) == 1
    dt = b.y.dtype
    scale = 1.0 / math.sqrt(dh)
    if n > cuda_core.GRID_YZ:  # the head products run the batch along gridDim.z: fail at bind, not mid-run
        raise NotImplementedError(f"{b.module}: batch {n} exceeds {cuda_core.GRID_YZ} on the GPU")

    def rows(a: Any) -> Any:
        return cuda_core.rows(a, d)

    xq, xkv = rows(b.x[0]), rows(b.x[len(b.x) - 1])
    w = [b.p[f"w_{p}"] for p in "qkvo"]
    bias = [b.p.get(f"b_{p}") for p in "qkvo"]
    q3, k3, v3, c3 = (b.saved[s] for s in ("q", "k", "v", "context"))  # [N, T, D]
    q, k, v, ctx = (rows(a) for a in (q3, k3, v3, c3))
    attn = b.saved["attn"]  # [N, h, Tq, Tk]
    scores = cuda_core.rows(attn, tk)
    y = rows(b.y)
    heads = [slice(j * dh, (j + 1) * dh) for j in range(h)]
    qh, kh, vh, ch = ([a[:, :, c] for c in heads] for a in (q3, k3, v3, c3))  # [N, T, dh] head views
    ah = [attn[:, j] for j in range(h)]  # [N, Tq, Tk]
    grid_q, grid_kv = cuda_core.grid_1d(q.size), cuda_core.grid_1d(k.size)
    threads_k = cuda_core.reduce_threads(tk)

    def project(x: Any, wp: Any, bp: Any, out: Any, grid: tuple[int, int]) -> None:
        if bp is None:
            cuda_core.gemm(False, True, 1.0, x, wp, 0.0, out)
        else:
            broadcast_rows_cuda[grid[0], grid[1]](bp, out)
            cuda_core.gemm(False, True, 1.0, x, wp, 1.0, out)

    def fwd() -> None:
        project(xq, w[0], bias[0], q, grid_q)
        project(xkv, w[1], bias[1], k, grid_kv)
        project(xkv, w[2], bias[2], v, grid_kv)
        for j in range(h):  # S = Q_j K_jᵀ / √dh for every sample at once
            cuda_core.gemm_batched(False, True, scale, qh[j], kh[j], 0.0, ah[j])
        softmax_cuda[scores.shape[0], threads_k](scores, tq, causal)
        for j in range(h):  # C_j = A V_j
            cuda_core.gemm_batched(False, False, 1.0, ah[j], vh[j], 0.0, ch[j])
        project(ctx, w[3], bias[3], y, grid_q)

    if b.dy is None:
        return fwd, nothing
    dy = rows(b.dy)
    # dA/dS of `group` samples of one head at a time: the contract's workspace holds h·Tq·Tk
    # elements (one sample's scores), more when another module needs a larger one.
    group = min(n, b.ws.nbytes // (dt.itemsize * tq * tk))
    if group < 1:
        raise ValueError(f"{b.module}: workspace of {b.ws.nbytes} bytes is smaller than one [Tq, Tk] block")
    ws = b.workspace(dt, group * tq * tk).reshape(group, tq, tk)
    chunks = []  # (dA/dS, A, dC→dQ, Q, K→dK, V→dV) views per (head, group of samples): bind time
    for j in range(h):
        for s0 in range(0, n, group):
            s1 = min(n, s0 + group)
            g = slice(s0, s1)
            chunks.append((ws[: s1 - s0], ah[j][g], ch[j][g], qh[j][g], kh[j][g], vh[j][g]))
    dxq = rows(b.dx[0]) if b.dx[0] is not None else None
    dxkv = rows(b.dx[1]) if not self_attn and b.dx[1] is not None else None
    dw = [b.dp.get(f"w_{p}") for p in "qkvo"]
    db = [b.dp.get(f"b_{p}") for p in "qkvo"]
    beta_q, beta_kv = (1.0 if b.acc[0] else 0.0), (1.0 if b.acc[len(b.acc) - 1] else 0.0)

    def bwd() -> None:
        if dw[3] is not None:
            cuda_core.gemm(True, False, 1.0, dy, ctx, 0.0, dw[3])
        if db[3] is not None:
            cuda_core.row_sum(dy, db[3])
        cuda_core.gemm(False, False, 1.0, dy, w[3], 0.0, ctx)  # ctx ← dC
        for dsc, a, dc, qj, kj, vj in chunks:  # each slice is dead once its own gradient is written
            cuda_core.gemm_batched(False, True, 1.0, dc, vj, 0.0, dsc)  # dA = dC_j V_jᵀ
            cuda_core.gemm_batched(True, False, 1.0, a, dc, 0.0, vj)  # v ← dV = Aᵀ dC_j
            softmax_backward_cuda[dsc.shape[0] * tq, threads_k](a, dsc)  # dS (1/√dh: next two)
            cuda_core.gemm_batched(False, False, scale, dsc, kj, 0.0, dc)  # ctx ← dQ = dS K_j / √dh
            cuda_core.gemm_batched(True, False, scale, dsc, qj, 0.0, kj)  # k ← dK = dSᵀ Q_j / √dh
        for grad, dbp in ((ctx, db[0]), (k, db[1]), (v, db[2])):
            if dbp is not None:
                cuda_core.row_sum(grad, dbp)
        for grad, x, dwp in ((ctx, xq, dw[0]), (k, xkv, dw[1]), (v, xkv, dw[2])):
            if dwp is not None:
                cuda_core.gemm(True, False, 1.0, grad, x, 0.0, dwp)
        if dxq is not None:
            cuda_core.gemm(False, False, 1.0, ctx, w[0], beta_q, dxq)
            if self_attn:
                cuda_core.gemm(False, False, 1.0, k, w[1], 1.0, dxq)
                cuda_core.gemm(False, False, 1.0, v, w[2], 1.0, dxq)
        if dxkv is not None:
            cuda_core.gemm(False, False, 1.0, k, w[1], beta_kv, dxkv)
            cuda_core.gemm(False, False, 1.0, v, w[2], 1.0, dxkv)

    return fwd, bwd
