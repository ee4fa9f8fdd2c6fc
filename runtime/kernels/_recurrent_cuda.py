"""The recurrent engine on the GPU: ``_recurrent``'s schedule with ``cuda_core.gemm`` for the products.

Per layer and direction: the bias broadcast into P and one GEMM for the input projection of all
steps; per step the recurrent GEMM into R and one launch of the cell over the N·H units
(``_recurrent.unit_forward``, the CPU's own function compiled as a device function). Backward runs
the same steps in reverse (``unit_backward``), accumulating dW_hh with a GEMM and db_hh with
``cuda_core.row_sum`` per step, and dW_ih, db_ih and the input gradient once per layer and
direction. Dropout between layers draws the dropout op's masks (``dropout.keep_cuda``), so a GPU
run drops what a CPU run drops. Every per-step view (previous states, a step's gates and output)
is built at bind time; the thunks only launch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from ..binding import Binding, Thunk, nothing
from . import cuda_core
from ._recurrent import GATES, carve, param_names, unit_backward, unit_forward
from .dropout import keep_cuda, stream_key_cuda
from .linear import broadcast_rows_cuda

_unit_forward = cuda.jit(device=True)(unit_forward)
_unit_backward = cuda.jit(device=True)(unit_backward)


@cuda.jit
def cell_forward_cuda(cell, p, r, hprev, cprev, g, h):
    hs = h.shape[1]
    for i in range(cuda.grid(1), h.shape[0] * hs, cuda.gridsize(1)):
        _unit_forward(cell, p, r, hprev, cprev, g, h, i // hs, i % hs)


@cuda.jit
def cell_backward_cuda(cell, g, hprev, cprev, dout, dh, dc, dp, dr):
    hs = dh.shape[1]
    for i in range(cuda.grid(1), dh.shape[0] * hs, cuda.gridsize(1)):
        _unit_backward(cell, g, hprev, cprev, dout, dh, dc, dp, dr, i // hs, i % hs)


@cuda.jit
def drop_input_cuda(seq, mask, xin, layer, drop, draw, threshold, scale, seed, index):
    # _recurrent.drop_input: xin [N·T, D·H] = seq[:, layer-1] (times its mask, drawn or read)
    n_rows, _, t_len, dh = seq.shape
    key = stream_key_cuda(seed, index)
    layers = max(mask.shape[1], 1)
    for e in range(cuda.grid(1), n_rows * t_len * dh, cuda.gridsize(1)):
        n, t, j = e // (t_len * dh), (e // dh) % t_len, e % dh
        v = seq[n, layer - 1, t, j]
        if drop:
            if draw:
                i = ((n * layers + layer - 1) * t_len + t) * dh + j
                mask[n, layer - 1, t, j] = scale if keep_cuda(key, i, threshold) else 0.0
            v = v * mask[n, layer - 1, t, j]
        xin[n * t_len + t, j] = v


@cuda.jit
def through_mask_cuda(dxin, mask, dyv, layer, drop):
    # the gradient of the layer below's output: dxin through its dropout mask
    n_rows, t_len, dh = dyv.shape
    for e in range(cuda.grid(1), n_rows * t_len * dh, cuda.gridsize(1)):
        n, t, j = e // (t_len * dh), (e // dh) % t_len, e % dh
        g = dxin[n * t_len + t, j]
        dyv[n, t, j] = g * mask[n, layer - 1, t, j] if drop else g


@cuda.jit
def last_cuda(seq, y, dy, dyv, forward, dirs):
    # forward: y = the final hidden states (forward direction at step T-1, reverse at step 0);
    # else: dyv (zeroed) gets dy at those steps
    n_rows, t_len, dh = dyv.shape
    hs = dh // dirs
    top = seq.shape[1] - 1
    for e in range(cuda.grid(1), n_rows * dh, cuda.gridsize(1)):
        n, j = e // dh, e % dh
        t = t_len - 1 if j < hs else 0
        if forward:
            y[n, j] = seq[n, top, t, j]
        else:
            dyv[n, t, j] = dy[n, j]


@cuda.jit
def copy2d_cuda(src, dst, acc):
    # dst (+)= src for 2-d arrays of any strides (the top layer's sequence, initial-state gradients)
    cols = dst.shape[1]
    for e in range(cuda.grid(1), dst.shape[0] * cols, cuda.gridsize(1)):
        n, j = e // cols, e % cols
        if acc:
            dst[n, j] += src[n, j]
        else:
            dst[n, j] = src[n, j]


def _launch(kernel: Any, n: int, *args: Any) -> None:
    blocks, threads = cuda_core.grid_1d(n)
    kernel[blocks, threads](*args)


def bind_cuda(b: Binding, cell: int) -> tuple[Thunk, Thunk]:
    """The forward and backward thunks of a recurrent module with the given cell on the GPU."""
    x, a = b.x[0], b.attrs
    n, t_len, f_in = x.shape
    hs, layers, dirs = a["hidden_size"], a["num_layers"], 1 + a["bidirectional"]
    gh, units = GATES[cell] * hs, n * hs
    pbuf, rbuf, carry, zero, dybuf, dxin, xin = carve(b, cell)
    names = param_names(a)
    w_ih, w_hh = [b.p["w_ih" + s] for s in names], [b.p["w_hh" + s] for s in names]
    b_ih, b_hh = [b.p.get("b_ih" + s) for s in names], [b.p.get("b_hh" + s) for s in names]
    seq, gates = b.saved["seq"], b.saved["gates"]
    mask = b.saved.get("mask", cuda_core.empty(x.dtype, 4))
    s_w = gates.shape[3] // hs
    pv = pbuf.reshape(n, t_len, gh)
    dyv = dybuf.reshape(n, t_len, dirs * hs)
    dh, dc = carry[:units].reshape(n, hs), carry[units:].reshape(n, hs)
    x2 = x.reshape(n * t_len, f_in)
    last = a["output"] == "last"
    seq3 = seq.reshape(n, layers, t_len * dirs * hs)
    y_seq = None if last else b.y.reshape(n, t_len * dirs * hs)
    p, state, index = float(a["dropout"]), b.state, int(b.index)
    threshold, scale = np.uint64(p * 9007199254740992.0), 1.0 / (1.0 - p)  # as the dropout op

    # (k, step) -> (t, hprev, cprev) views, built once
    steps: dict[tuple[int, int], tuple[int, Any, Any]] = {}
    for k in range(layers * dirs):
        layer, d = divmod(k, dirs)
        for step in range(t_len):
            t = step if d == 0 else t_len - 1 - step
            tp = t - 1 if d == 0 else t + 1
            if step == 0:
                hprev = b.x[1][:, k, :] if len(b.x) > 1 else zero
                cprev = b.x[2][:, k, :] if len(b.x) > 2 else zero
            else:
                hprev = seq[:, layer, tp, d * hs : (d + 1) * hs]
                cprev = gates[:, k, tp, (s_w - 1) * hs : s_w * hs]
            steps[k, step] = (t, hprev, cprev)

    def product(bias: Any, a_: Any, w: Any, out: Any) -> None:
        # out = a_ wᵀ + bias
        if bias is not None:
            _launch(broadcast_rows_cuda, out.size, bias, out)
        cuda_core.gemm(False, True, 1.0, a_, w, 1.0 if bias is not None else 0.0, out)

    def layer_input(layer: int, drop: bool, draw: bool) -> Any:
        if layer == 0:
            return x2
        seed = state.seed[0]
        _launch(drop_input_cuda, xin.size, seq, mask, xin, layer, drop, draw, threshold, scale, seed, index)
        return xin

    def fwd() -> None:
        drop = bool(state.training[0]) and p > 0
        cuda_core.zero(zero)
        for layer in range(layers):
            inp = layer_input(layer, drop, True)
            for d in range(dirs):
                k = layer * dirs + d
                product(b_ih[k], inp, w_ih[k], pbuf)
                for step in range(t_len):
                    t, hprev, cprev = steps[k, step]
                    product(b_hh[k], hprev, w_hh[k], rbuf)
                    h = seq[:, layer, t, d * hs : (d + 1) * hs]
                    _launch(
                        cell_forward_cuda, units, cell, pv[:, t, :], rbuf, hprev, cprev, gates[:, k, t, :], h
                    )
        if last:
            _launch(last_cuda, n * dirs * hs, seq, b.y, b.y, dyv, True, dirs)
        else:
            _launch(copy2d_cuda, y_seq.size, seq3[:, layers - 1, :], y_seq, False)

    if b.dy is None:
        return fwd, nothing
    dw_ih, dw_hh = [b.dp.get("w_ih" + s) for s in names], [b.dp.get("w_hh" + s) for s in names]
    db_ih, db_hh = [b.dp.get("b_ih" + s) for s in names], [b.dp.get("b_hh" + s) for s in names]
    grads = [g for g in (*dw_ih, *dw_hh, *db_ih, *db_hh) if g is not None]
    dx = [b.dx[i] if i < len(b.dx) else None for i in range(3)]
    acc = [bool(b.acc[i]) if i < len(b.acc) else False for i in range(3)]
    dx2 = dx[0].reshape(n * t_len, f_in) if dx[0] is not None else None
    dy_flat = None if last else cuda_core.flat(b.dy)

    def bwd() -> None:
        drop = bool(state.training[0]) and p > 0
        cuda_core.zero(zero)
        for g in grads:
            cuda_core.zero(g)
        if last:
            cuda_core.zero(dybuf)
            _launch(last_cuda, n * dirs * hs, seq, b.y, b.dy, dyv, False, dirs)
        else:
            cuda_core.copy(dy_flat, dybuf)
        for layer in range(layers - 1, -1, -1):
            inp = layer_input(layer, drop, False)
            for d in range(dirs):
                k = layer * dirs + d
                cuda_core.zero(carry)
                for step in range(t_len - 1, -1, -1):
                    t, hprev, cprev = steps[k, step]
                    dout = dyv[:, t, d * hs : (d + 1) * hs]
                    _launch(cell_backward_cuda, units, cell, gates[:, k, t, :], hprev, cprev, dout, dh, dc,
                            pv[:, t, :], rbuf)  # fmt: skip
                    if dw_hh[k] is not None:
                        cuda_core.gemm(True, False, 1.0, rbuf, hprev, 1.0, dw_hh[k])
                    if db_hh[k] is not None:
                        cuda_core.row_sum(rbuf, db_hh[k], True)
                    cuda_core.gemm(False, False, 1.0, rbuf, w_hh[k], 1.0, dh)
                for i, carried in ((1, dh), (2, dc)):
                    if dx[i] is not None:
                        _launch(copy2d_cuda, units, carried, dx[i][:, k, :], acc[i])
                if dw_ih[k] is not None:
                    cuda_core.gemm(True, False, 1.0, pbuf, inp, 1.0, dw_ih[k])
                if db_ih[k] is not None:
                    cuda_core.row_sum(pbuf, db_ih[k], True)
                if layer > 0:
                    cuda_core.gemm(False, False, 1.0, pbuf, w_ih[k], 1.0 if d else 0.0, dxin)
                elif dx2 is not None:
                    cuda_core.gemm(False, False, 1.0, pbuf, w_ih[k], 1.0 if d or acc[0] else 0.0, dx2)
            if layer > 0:
                _launch(through_mask_cuda, dybuf.size, dxin, mask, dyv, layer, drop)

    return fwd, bwd
