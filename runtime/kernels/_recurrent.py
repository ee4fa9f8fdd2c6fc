"""The recurrent engine the rnn, lstm and gru kernels share: they differ only in their cell.

Per layer and direction k = l·D + d: the input projection of all N·T rows is one GEMM
(``_blas.project``) into the workspace P [N·T, g·H]; then per step the recurrent product
R = h_{t-1} W_hhᵀ + b_hh (one GEMM of N rows, on a strided view of the saved sequence) and the
cell's pointwise math (``cell_forward``), which writes what backward needs into ``gates`` and h_t
into ``seq``. A layer above the first reads the layer below through dropout (training, p > 0):
``drop_input`` writes that dropped input into the workspace and the mask into ``mask``.

Backward through time runs the steps in reverse: ``cell_backward`` turns dh (from the layer's
output gradient plus the carry) into the gradient of the input pre-activation (kept for all steps in
P's place, for the three GEMMs of dW_ih, db_ih and the layer's input gradient after the loop) and
of the recurrent one (dR: dW_hh += dRᵀ h_{t-1}, dh_{t-1} += dR W_hh). Weight gradients accumulate
over steps and directions into zeroed buffers. The workspace holds every buffer (contract
``_recurrent.workspace_elements``), carved at bind time; nothing is allocated in a step.

Cells (``cell``): RNN_TANH, RNN_RELU, LSTM (gates i, f, g, o; saved i, f, g, o, c), GRU (gates r,
z, n; saved r, z, n and W_hn h + b_hn). The parameter tuples hold one array per k.

On the GPU (``_recurrent_cuda``) the same schedule runs with ``cuda_core.gemm`` and the same unit
functions compiled as device functions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ...compiler.ops._recurrent import workspace_elements
from ..binding import Binding, Thunk, nothing
from ..launch import Launch, OneBlasThread
from ._blas import OPENBLAS, gemm, project
from .dropout import keep, stream_key

RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3
GATES = {RNN_TANH: 1, RNN_RELU: 1, LSTM: 4, GRU: 3}


# The unit functions are plain Python, compiled for the CPU (njit) and the GPU (cuda device
# functions, ``_recurrent_cuda``); a sigmoid is written out as 1 / (1 + exp(-a)) in them.
def unit_forward(cell, p, r, hprev, cprev, g, h, n, j):
    """Unit j of row n of one step: p, r the input and recurrent pre-activations [N, gH];
    hprev/cprev [N, H] the previous states (cprev: lstm); g [N, S·H] what backward needs; h [N, H]
    the output."""
    hs = h.shape[1]
    if cell == LSTM:
        i = 1.0 / (1.0 + math.exp(-(p[n, j] + r[n, j])))
        f = 1.0 / (1.0 + math.exp(-(p[n, hs + j] + r[n, hs + j])))
        gg = math.tanh(p[n, 2 * hs + j] + r[n, 2 * hs + j])
        o = 1.0 / (1.0 + math.exp(-(p[n, 3 * hs + j] + r[n, 3 * hs + j])))
        c = f * cprev[n, j] + i * gg
        g[n, j], g[n, hs + j], g[n, 2 * hs + j], g[n, 3 * hs + j], g[n, 4 * hs + j] = i, f, gg, o, c
        h[n, j] = o * math.tanh(c)
    elif cell == GRU:
        rr = 1.0 / (1.0 + math.exp(-(p[n, j] + r[n, j])))
        z = 1.0 / (1.0 + math.exp(-(p[n, hs + j] + r[n, hs + j])))
        hn = r[n, 2 * hs + j]
        nn = math.tanh(p[n, 2 * hs + j] + rr * hn)
        g[n, j], g[n, hs + j], g[n, 2 * hs + j], g[n, 3 * hs + j] = rr, z, nn, hn
        h[n, j] = (1.0 - z) * nn + z * hprev[n, j]
    else:
        a = p[n, j] + r[n, j]
        v = math.tanh(a) if cell == RNN_TANH else max(a, 0.0)
        g[n, j] = v
        h[n, j] = v


def unit_backward(cell, g, hprev, cprev, dout, dh, dc, dp, dr, n, j):
    """Unit j of row n backward: dout [N, H] the gradient reaching h_t from above; dh, dc [N, H]
    the carries from step t+1, replaced by the direct part of the carry to step t-1 (gru's z⊙dh,
    lstm's f⊙dc); dp, dr [N, gH] the gradients of the input and recurrent pre-activations."""
    hs = dh.shape[1]
    d = dout[n, j] + dh[n, j]
    if cell == LSTM:
        i, f, gg, o, c = g[n, j], g[n, hs + j], g[n, 2 * hs + j], g[n, 3 * hs + j], g[n, 4 * hs + j]
        tc = math.tanh(c)
        dcc = d * o * (1.0 - tc * tc) + dc[n, j]
        dp[n, j] = dr[n, j] = dcc * gg * i * (1.0 - i)
        dp[n, hs + j] = dr[n, hs + j] = dcc * cprev[n, j] * f * (1.0 - f)
        dp[n, 2 * hs + j] = dr[n, 2 * hs + j] = dcc * i * (1.0 - gg * gg)
        dp[n, 3 * hs + j] = dr[n, 3 * hs + j] = d * tc * o * (1.0 - o)
        dc[n, j] = dcc * f
        dh[n, j] = 0.0
    elif cell == GRU:
        rr, z, nn, hn = g[n, j], g[n, hs + j], g[n, 2 * hs + j], g[n, 3 * hs + j]
        dn = d * (1.0 - z) * (1.0 - nn * nn)
        dz = d * (hprev[n, j] - nn) * z * (1.0 - z)
        drr = dn * hn * rr * (1.0 - rr)
        dp[n, j], dp[n, hs + j], dp[n, 2 * hs + j] = drr, dz, dn
        dr[n, j], dr[n, hs + j], dr[n, 2 * hs + j] = drr, dz, dn * rr
        dh[n, j] = d * z
    else:
        v = g[n, j]
        da = d * (1.0 - v * v) if cell == RNN_TANH else (d if v > 0 else 0.0)
        dp[n, j] = dr[n, j] = da
        dh[n, j] = 0.0


_unit_forward = njit(cache=True, inline="always")(unit_forward)
_unit_backward = njit(cache=True, inline="always")(unit_backward)


@njit(cache=True)
def cell_forward(cell, p, r, hprev, cprev, g, h):
    # one step for all N rows (unit_forward)
    for n in range(h.shape[0]):
        for j in range(h.shape[1]):
            _unit_forward(cell, p, r, hprev, cprev, g, h, n, j)


@njit(cache=True)
def cell_backward(cell, g, hprev, cprev, dout, dh, dc, dp, dr):
    # one step back for all N rows (unit_backward)
    for n in range(dh.shape[0]):
        for j in range(dh.shape[1]):
            _unit_backward(cell, g, hprev, cprev, dout, dh, dc, dp, dr, n, j)


@njit(cache=True)
def drop_input(seq, mask, xin, layer, drop, draw, p, seed, index):
    # xin [N·T, D·H] = the output of layer-1 (seq[:, layer-1]), times its dropout mask when drop;
    # the mask drawn (forward: element i of the mask kept as the dropout op keeps element i of its
    # stream) or read back (backward)
    n_rows, _, t_len, dh = seq.shape
    threshold = np.uint64(p * 9007199254740992.0)  # p · 2^53, as the dropout op
    scale = 1.0 / (1.0 - p)
    key = stream_key(seed, index)
    layers = max(mask.shape[1], 1)
    for n in range(n_rows):
        for t in range(t_len):
            for j in range(dh):
                v = seq[n, layer - 1, t, j]
                if drop:
                    if draw:
                        i = ((n * layers + layer - 1) * t_len + t) * dh + j  # the mask's flat index
                        mask[n, layer - 1, t, j] = scale if keep(key, i, threshold) else 0.0
                    v = v * mask[n, layer - 1, t, j]
                xin[n * t_len + t, j] = v


@njit(cache=True)
def _prev(seq, gates, h0, c0, zero, layer, k, d, tp, first, hs, s):
    # the previous hidden and cell state of step tp's successor: the initial states (or zeros)
    # at the first step
    if first:
        hprev = h0[:, k, :] if h0.shape[0] else zero
        cprev = c0[:, k, :] if c0.shape[0] else zero
    else:
        hprev = seq[:, layer, tp, d * hs : (d + 1) * hs]
        cprev = gates[:, k, tp, (s - 1) * hs : s * hs]
    return hprev, cprev


@njit(cache=True)
def forward_cpu(cell, x, h0, c0, y, seq, gates, mask, w_ih, w_hh, b_ih, b_hh, pbuf, rbuf, zero, xin,
                last, p, training, seed, index):  # fmt: skip
    n_rows, t_len, f_in = x.shape
    layers, dirs = seq.shape[1], len(w_ih) // seq.shape[1]
    gh, hs = w_hh[0].shape
    s = gates.shape[3] // hs
    zero[:] = 0.0
    drop = training[0] != 0 and p > 0.0
    for layer in range(layers):
        if layer == 0:
            inp = x.reshape(n_rows * t_len, f_in)
        else:
            drop_input(seq, mask, xin, layer, drop, True, p, seed[0], index)
            inp = xin
        for d in range(dirs):
            k = layer * dirs + d
            project(inp, w_ih[k], b_ih[k], pbuf)
            pv = pbuf.reshape(n_rows, t_len, gh)
            for step in range(t_len):
                t = step if d == 0 else t_len - 1 - step
                tp = t - 1 if d == 0 else t + 1
                hprev, cprev = _prev(seq, gates, h0, c0, zero, layer, k, d, tp, step == 0, hs, s)
                project(hprev, w_hh[k], b_hh[k], rbuf)
                cell_forward(
                    cell,
                    pv[:, t, :],
                    rbuf,
                    hprev,
                    cprev,
                    gates[:, k, t, :],
                    seq[:, layer, t, d * hs : (d + 1) * hs],
                )
    top = layers - 1
    if last:
        for n in range(n_rows):
            y[n, :hs] = seq[n, top, t_len - 1, :hs]
            if dirs == 2:
                y[n, hs:] = seq[n, top, 0, hs:]
    else:
        y[:] = seq[:, top]


@njit(cache=True)
def _store(dst, src, acc):
    if acc:
        dst += src
    else:
        dst[:] = src


@njit(cache=True)
def _colsum(a, out):
    for r in range(a.shape[0]):
        for j in range(out.size):
            out[j] += a[r, j]


@njit(cache=True)
def backward_cpu(cell, x, h0, c0, dy, dx, dh0, dc0, seq, gates, mask, w_ih, w_hh, dw_ih, dw_hh, db_ih, db_hh,
                 pbuf, rbuf, carry, dybuf, dxin, zero, xin, last, p, training, seed, index,
                 acc, acc_h, acc_c):  # fmt: skip
    n_rows, t_len, f_in = x.shape
    layers, dirs = seq.shape[1], len(w_ih) // seq.shape[1]
    gh, hs = w_hh[0].shape
    s = gates.shape[3] // hs
    zero[:] = 0.0
    drop = training[0] != 0 and p > 0.0
    for k in range(len(w_ih)):
        dw_ih[k][:] = 0.0
        dw_hh[k][:] = 0.0
        db_ih[k][:] = 0.0
        db_hh[k][:] = 0.0
    dyv = dybuf.reshape(n_rows, t_len, dirs * hs)
    if last:
        dyv[:] = 0.0
        for n in range(n_rows):
            dyv[n, t_len - 1, :hs] = dy[n, :hs]
            if dirs == 2:
                dyv[n, 0, hs:] += dy[n, hs:]
    else:
        dyv[:] = dy
    dh = carry[: n_rows * hs].reshape(n_rows, hs)
    dc = carry[n_rows * hs :].reshape(n_rows, hs)
    for layer in range(layers - 1, -1, -1):
        if layer == 0:
            inp = x.reshape(n_rows * t_len, f_in)
        else:
            # the dropped input again (the mask is saved: the same values, recomputed bit for bit)
            drop_input(seq, mask, xin, layer, drop, False, p, seed[0], index)
            inp = xin
        for d in range(dirs):
            k = layer * dirs + d
            dh[:] = 0.0
            dc[:] = 0.0
            dpv = pbuf.reshape(n_rows, t_len, gh)
            for step in range(t_len - 1, -1, -1):
                t = step if d == 0 else t_len - 1 - step
                tp = t - 1 if d == 0 else t + 1
                hprev, cprev = _prev(seq, gates, h0, c0, zero, layer, k, d, tp, step == 0, hs, s)
                cell_backward(
                    cell,
                    gates[:, k, t, :],
                    hprev,
                    cprev,
                    dyv[:, t, d * hs : (d + 1) * hs],
                    dh,
                    dc,
                    dpv[:, t, :],
                    rbuf,
                )
                gemm(rbuf, hprev, dw_hh[k], True, False, 1.0, 1.0)
                _colsum(rbuf, db_hh[k])
                gemm(rbuf, w_hh[k], dh, False, False, 1.0, 1.0)
            if dh0.shape[0]:
                _store(dh0[:, k, :], dh, acc_h)
            if dc0.shape[0]:
                _store(dc0[:, k, :], dc, acc_c)
            gemm(pbuf, inp, dw_ih[k], True, False, 1.0, 1.0)
            _colsum(pbuf, db_ih[k])
            if layer > 0:
                gemm(pbuf, w_ih[k], dxin, False, False, 1.0, 1.0 if d else 0.0)
            elif dx.shape[0]:
                beta = 1.0 if d or acc else 0.0
                gemm(pbuf, w_ih[k], dx.reshape(n_rows * t_len, f_in), False, False, 1.0, beta)
        if layer > 0:  # the gradient of the layer below's output, through its dropout
            for n in range(n_rows):
                for t in range(t_len):
                    for j in range(dirs * hs):
                        g = dxin[n * t_len + t, j]
                        dyv[n, t, j] = g * mask[n, layer - 1, t, j] if drop else g


def carve(b: Binding, cell: int) -> tuple:
    """The workspace buffers (pbuf, rbuf, carry, zero, dybuf, dxin, xin; xin has no rows for one
    layer), views of ``b.ws`` NumPy or device alike, in the order the contract counts them."""
    x, a = b.x[0], b.attrs
    n, t_len, _ = x.shape
    hs, layers, dirs = a["hidden_size"], a["num_layers"], 1 + a["bidirectional"]
    gh = GATES[cell] * hs
    ws = b.workspace(x.dtype, workspace_elements(GATES[cell], a, x.shape[1:], n))
    sizes = [n * t_len * gh, n * gh, 2 * n * hs, n * hs, n * t_len * dirs * hs, n * t_len * dirs * hs]
    ends = [int(e) for e in np.cumsum(sizes)]
    return (
        ws[: ends[0]].reshape(n * t_len, gh),
        ws[ends[0] : ends[1]].reshape(n, gh),
        ws[ends[1] : ends[2]],
        ws[ends[2] : ends[3]].reshape(n, hs),  # the missing initial state
        ws[ends[3] : ends[4]],
        ws[ends[4] : ends[5]].reshape(n * t_len, dirs * hs),
        ws[ends[5] : ends[5] + (n * t_len * dirs * hs if layers > 1 else 0)].reshape(-1, dirs * hs),
    )


def param_names(attrs: dict) -> list[str]:
    """The suffixes of the parameters of each layer and direction k = l·D + d, in order."""
    dirs = 1 + attrs["bidirectional"]
    return [f"_l{layer}{sfx}" for layer in range(attrs["num_layers"]) for sfx in ("", "_reverse")[:dirs]]


def bind_cpu(b: Binding, cell: int) -> tuple[Thunk, Thunk]:
    """The forward and backward launches of a recurrent module with the given cell."""
    x, a = b.x[0], b.attrs
    dtype = x.dtype
    empty3 = np.zeros((0, 0, 0), dtype)
    h0 = b.x[1] if len(b.x) > 1 else empty3
    c0 = b.x[2] if len(b.x) > 2 else empty3
    names = param_names(a)
    empty1 = np.zeros(0, dtype)
    w_ih = tuple(b.p["w_ih" + s] for s in names)
    w_hh = tuple(b.p["w_hh" + s] for s in names)
    b_ih = tuple(b.p.get("b_ih" + s, empty1) for s in names)
    b_hh = tuple(b.p.get("b_hh" + s, empty1) for s in names)
    pbuf, rbuf, carry, zero, dybuf, dxin, xin = carve(b, cell)
    seq, gates = b.saved["seq"], b.saved["gates"]
    mask = b.saved.get("mask", np.zeros((0, 0, 0, 0), dtype))
    last = a["output"] == "last"
    p, state, index = float(a["dropout"]), b.state, int(b.index)
    common = (last, p, state.training, state.seed, index)
    # OpenBLAS on one thread, whatever the plan allows (Binding.blas_threads): its threads spin-wait
    # after every GEMM, and the steps' GEMMs are small and many. lstm_mnist_rows at batch 32, per-op,
    # load 9.6: 21.6 ms a training step on one BLAS thread, 530 ms (86 to 1010) on two
    launch = OneBlasThread if OPENBLAS is not None else Launch
    fwd = launch(forward_cpu, cell, x, h0, c0, b.y, seq, gates, mask, w_ih, w_hh, b_ih, b_hh, pbuf, rbuf,
                 zero, xin, *common)  # fmt: skip
    if b.dy is None:
        return fwd, nothing

    def grad(i: int) -> np.ndarray:
        g = b.dx[i] if i < len(b.dx) else None
        return g if g is not None else empty3

    def dgrads(prefix: str, like: tuple) -> tuple:
        return tuple(
            g if (g := b.dp.get(prefix + s)) is not None else np.zeros_like(w)
            for s, w in zip(names, like, strict=True)
        )

    dw_ih, dw_hh = dgrads("w_ih", w_ih), dgrads("w_hh", w_hh)
    db_ih, db_hh = dgrads("b_ih", b_ih), dgrads("b_hh", b_hh)
    acc = tuple(bool(b.acc[i]) if i < len(b.acc) else False for i in range(3))
    bwd = launch(backward_cpu, cell, x, h0, c0, b.dy, grad(0), grad(1), grad(2), seq, gates, mask, w_ih,
                 w_hh, dw_ih, dw_hh, db_ih, db_hh, pbuf, rbuf, carry, dybuf, dxin, zero, xin, *common,
                 *acc)  # fmt: skip
    return fwd, bwd
