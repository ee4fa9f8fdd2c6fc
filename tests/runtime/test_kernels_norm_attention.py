"""Parity (vs PyTorch) and gradient checks of the norm_attention group: batchnorm1d, batchnorm2d,
layernorm, multi_head_attention."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pytest
import torch
from harness import OpRun, close, gradcheck, rand, rebind, t
from torch import nn

from netc.runtime.kernels import kernel_module

# -- batchnorm --------------------------------------------------------------------------------------

BN_CASES = [
    # (op, attributes, input shape with batch)
    ("batchnorm1d", {}, (6, 5)),
    ("batchnorm1d", {"momentum": 0.3, "eps": 1e-3, "affine": False}, (4, 5, 7)),
    ("batchnorm1d", {"momentum": 0.05}, (3, 4, 6)),
    ("batchnorm2d", {}, (3, 4, 5, 6)),
    ("batchnorm2d", {"momentum": 0.2, "eps": 1e-2, "affine": False}, (2, 3, 4, 5)),
]


def bn_params(c: int, affine: bool, seed: int) -> dict[str, np.ndarray]:
    p = {"running_mean": rand((c,), seed, 0.5), "running_var": rand((c,), seed + 1, 0.2) ** 2 + 0.5}
    if affine:
        p |= {"w": rand((c,), seed + 2, 0.5, 1.0), "b": rand((c,), seed + 3, 0.5)}
    return p


def bn_run(op: str, attrs: dict[str, Any], shape: tuple[int, ...], training: bool, dtype: Any = np.float32):
    affine = attrs.get("affine", True)
    x = rand(shape, 7, 2.0, 0.5)
    return OpRun(op, attrs, [x], params=bn_params(shape[1], affine, 3), training=training, dtype=dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("op", "attrs", "shape"), BN_CASES)
def test_batchnorm_parity(op: str, attrs: dict[str, Any], shape: tuple[int, ...], training: bool) -> None:
    run = bn_run(op, attrs, shape, training)
    full = run.attrs
    cls = nn.BatchNorm1d if op == "batchnorm1d" else nn.BatchNorm2d
    bn = cls(shape[1], eps=full["eps"], momentum=full["momentum"], affine=full["affine"])
    with torch.no_grad():
        bn.running_mean.copy_(t(run.params["running_mean"]))
        bn.running_var.copy_(t(run.params["running_var"]))
        if full["affine"]:
            bn.weight.copy_(t(run.params["w"]))
            bn.bias.copy_(t(run.params["b"]))
    bn.train(training)
    xt = t(run.x[0], True)
    yt = bn(xt)
    yt.backward(t(run.dy))
    run.run()
    close(run.y, yt, "y")
    close(run.dx[0], xt.grad, "dx")
    close(run.params["running_mean"], bn.running_mean, "running_mean", 1e-6)
    close(run.params["running_var"], bn.running_var, "running_var", 1e-6)
    if full["affine"]:
        close(run.dp["w"], bn.weight.grad, "dw")
        close(run.dp["b"], bn.bias.grad, "db")
    assert run.dp["running_mean"] is None and run.dp["running_var"] is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", [0, 1, 3])
def test_batchnorm_gradcheck(case: int, training: bool) -> None:
    op, attrs, shape = BN_CASES[case]
    gradcheck(bn_run(op, attrs, shape, training, np.float64))


def test_batchnorm_accumulates_and_skips() -> None:
    op, attrs, shape = BN_CASES[3]
    ref = bn_run(op, attrs, shape, True).run()
    run = bn_run(op, attrs, shape, True)
    run.binding.acc[0] = True
    rebind(run)
    run.dx[0][:] = 1.0
    run.run()
    close(run.dx[0], ref.dx[0] + 1.0, "dx accumulated")
    # no input gradient wanted: parameter gradients still come
    run = OpRun(op, attrs, [ref.x[0]], params=ref.params, dy=ref.dy, need_dx=[False])
    run.run()
    close(run.dp["w"], ref.dp["w"], "dw without dx")


def test_batchnorm_mode_is_read_per_call() -> None:
    """The mode is read from state at call time, not at bind time."""
    op, attrs, shape = BN_CASES[0]
    run = bn_run(op, attrs, shape, True)
    rm = run.params["running_mean"].copy()
    run.state.training[0] = 0
    run.forward()
    np.testing.assert_array_equal(run.params["running_mean"], rm)
    run.state.training[0] = 1
    run.forward()
    assert not np.array_equal(run.params["running_mean"], rm)


# -- layernorm --------------------------------------------------------------------------------------

LN_CASES = [
    ({}, (4, 10)),
    ({"normalized_axes": 1}, (3, 5, 8)),
    ({"normalized_axes": 2, "eps": 1e-3}, (3, 4, 5, 6)),
    ({"normalized_axes": 3, "affine": False}, (3, 4, 5, 6)),
    ({"normalized_axes": 2}, (2, 3, 70)),  # more than one column block in dw/db
]


def ln_run(attrs: dict[str, Any], shape: tuple[int, ...], dtype: Any = np.float32) -> OpRun:
    return OpRun("layernorm", attrs, [rand(shape, 11, 1.5, 0.3)], dtype=dtype, seed=2)


@pytest.mark.parametrize(("attrs", "shape"), LN_CASES)
def test_layernorm_parity(attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    run = ln_run(attrs, shape).run()
    full = run.attrs
    k = full["normalized_axes"]
    ln = nn.LayerNorm(shape[len(shape) - k :], eps=full["eps"], elementwise_affine=full["affine"])
    if full["affine"]:
        with torch.no_grad():
            ln.weight.copy_(t(run.params["w"]))
            ln.bias.copy_(t(run.params["b"]))
    xt = t(run.x[0], True)
    yt = ln(xt)
    yt.backward(t(run.dy))
    close(run.y, yt, "y")
    close(run.dx[0], xt.grad, "dx")
    if full["affine"]:
        close(run.dp["w"], ln.weight.grad, "dw")
        close(run.dp["b"], ln.bias.grad, "db")
    xd = xt.detach().double()
    dims = tuple(range(xd.dim() - k, xd.dim()))
    close(run.saved["mean"], xd.mean(dims), "saved mean", 1e-6)
    close(run.saved["invstd"], 1 / (xd.var(dims, unbiased=False) + full["eps"]).sqrt(), "saved invstd", 1e-6)


@pytest.mark.parametrize("case", [1, 3])
def test_layernorm_gradcheck(case: int) -> None:
    gradcheck(ln_run(*LN_CASES[case], dtype=np.float64))


def test_layernorm_accumulates() -> None:
    attrs, shape = LN_CASES[2]
    ref = ln_run(attrs, shape).run()
    run = ln_run(attrs, shape)
    run.binding.acc[0] = True
    rebind(run)
    run.dx[0][:] = -2.0
    run.run()
    close(run.dx[0], ref.dx[0] - 2.0, "dx accumulated")
    close(run.dp["w"], ref.dp["w"], "dw")
    run.run()  # parameter gradients are overwritten, not accumulated
    close(run.dp["b"], ref.dp["b"], "db after a second backward")


# -- multi_head_attention ---------------------------------------------------------------------------

MHA_CASES = [
    # (attributes, Tq, Tk (None: self-attention), D)
    ({"num_heads": 2}, 5, None, 8),
    ({"num_heads": 4, "causal": True}, 6, None, 8),
    ({"num_heads": 1}, 4, None, 6),
    ({"num_heads": 2, "bias": False}, 5, None, 8),
    ({"num_heads": 2}, 3, 7, 8),  # cross, Tk > Tq
    ({"num_heads": 4, "causal": True}, 6, 4, 8),  # cross, causal, Tq > Tk
    ({"num_heads": 2, "bias": False}, 7, 3, 6),
]


def mha_run(
    attrs: dict[str, Any], tq: int, tk: int | None, d: int, n: int = 3, dtype: Any = np.float32
) -> OpRun:
    xs = [rand((n, tq, d), 21)] + ([rand((n, tk, d), 22)] if tk is not None else [])
    params = {f"w_{p}": rand((d, d), 30 + i, 0.4) for i, p in enumerate("qkvo")}
    if attrs.get("bias", True):
        params |= {f"b_{p}": rand((d,), 40 + i, 0.3) for i, p in enumerate("qkvo")}
    return OpRun("multi_head_attention", attrs, xs, params=params, dtype=dtype, seed=4)


def torch_mha(run: OpRun) -> tuple[nn.MultiheadAttention, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The PyTorch twin with run's parameters; returns (module, inputs, output, attention weights)."""
    a, p = run.attrs, run.params
    d = run.x[0].shape[-1]
    dtype = torch.from_numpy(run.x[0]).dtype
    mha = nn.MultiheadAttention(d, a["num_heads"], bias=a["bias"], batch_first=True, dtype=dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(t(np.concatenate([p["w_q"], p["w_k"], p["w_v"]])))
        mha.out_proj.weight.copy_(t(p["w_o"]))
        if a["bias"]:
            mha.in_proj_bias.copy_(t(np.concatenate([p["b_q"], p["b_k"], p["b_v"]])))
            mha.out_proj.bias.copy_(t(p["b_o"]))
    xs = [t(x, True) for x in run.x]
    q, kv = xs[0], xs[-1]
    mask = torch.triu(torch.ones(q.shape[1], kv.shape[1], dtype=torch.bool), 1) if a["causal"] else None
    y, w = mha(q, kv, kv, attn_mask=mask, need_weights=True, average_attn_weights=False)
    return mha, xs, y, w


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("attrs", "tq", "tk", "d"), MHA_CASES)
def test_mha_parity(attrs: dict[str, Any], tq: int, tk: int | None, d: int, dtype: Any) -> None:
    run = mha_run(attrs, tq, tk, d, dtype=dtype)
    mha, xs, yt, wt = torch_mha(run)
    yt.backward(t(run.dy))
    run.forward()
    close(run.y, yt, "y")
    # the saved row statistics (max, 1/sum) rebuild torch's attention weights
    h, dh = attrs["num_heads"], d // attrs["num_heads"]
    qs = run.saved["q"].reshape(len(run.x[0]), tq, h, dh).transpose(0, 2, 1, 3)
    ks = run.saved["k"].reshape(len(run.x[0]), -1, h, dh).transpose(0, 2, 1, 3)
    scores = qs @ ks.transpose(0, 1, 3, 2) / np.sqrt(dh)
    st = run.saved["softmax"]
    a = np.exp(scores - st[..., :1]) * st[..., 1:]
    if attrs.get("causal"):
        a = np.where(np.triu(np.ones(a.shape[-2:], bool), 1), 0.0, a)
    close(a, wt, "attention from the saved statistics")
    x, p = run.x, run.params
    bias = (
        {k: p[k] for k in ("b_q", "b_k", "b_v")}
        if run.attrs["bias"]
        else dict.fromkeys(("b_q", "b_k", "b_v"), 0)
    )
    close(run.saved["q"], x[0] @ p["w_q"].T + bias["b_q"], "saved q")
    close(run.saved["k"], x[-1] @ p["w_k"].T + bias["b_k"], "saved k")
    close(run.saved["v"], x[-1] @ p["w_v"].T + bias["b_v"], "saved v")
    run.backward()
    for i, xt in enumerate(xs):
        close(run.dx[i], xt.grad, f"dx{i}")
    d_ = x[0].shape[-1]
    gw = mha.in_proj_weight.grad
    for i, name in enumerate("qkv"):
        close(run.dp[f"w_{name}"], gw[i * d_ : (i + 1) * d_], f"dw_{name}")
    close(run.dp["w_o"], mha.out_proj.weight.grad, "dw_o")
    if run.attrs["bias"]:
        gb = mha.in_proj_bias.grad
        for i, name in enumerate("qkv"):
            close(run.dp[f"b_{name}"], gb[i * d_ : (i + 1) * d_], f"db_{name}")
        close(run.dp["b_o"], mha.out_proj.bias.grad, "db_o")


def test_mha_is_causal_matches_mask() -> None:
    """torch's is_causal flag and the explicit triu mask agree with the causal kernels."""
    run = mha_run(*MHA_CASES[1]).run()
    mha, xs, _, _ = torch_mha(run)
    x = xs[0]
    mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
    y, _ = mha(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)
    close(run.y, y, "y (is_causal)")


@pytest.mark.parametrize("case", [0, 1, 3, 4, 5])
def test_mha_gradcheck(case: int) -> None:
    gradcheck(mha_run(*MHA_CASES[case], n=2, dtype=np.float64))


@pytest.mark.parametrize("case", [0, 4])
def test_mha_accumulates(case: int) -> None:
    ref = mha_run(*MHA_CASES[case]).run()
    run = mha_run(*MHA_CASES[case])
    run.binding.acc = [True] * len(run.x)
    rebind(run)
    for i, g in enumerate(run.dx):
        g[:] = i + 0.5
    run.run()
    for i, g in enumerate(run.dx):
        close(g, ref.dx[i] + i + 0.5, f"dx{i} accumulated")
    close(run.dp["w_q"], ref.dp["w_q"], "dw_q")
    run.run()  # forward restores the saved tensors backward reused as scratch; dw is overwritten
    close(run.dp["w_k"], ref.dp["w_k"], "dw_k after a second step")


def test_mha_frozen_and_no_dx() -> None:
    """Frozen weights (dp None) and unwanted input gradients are skipped; the rest is unchanged."""
    attrs, tq, tk, d = MHA_CASES[4]
    ref = mha_run(attrs, tq, tk, d).run()
    run = mha_run(attrs, tq, tk, d)
    run.binding.dp = run.dp = {k: (None if k in ("w_q", "b_v") else g) for k, g in run.dp.items()}
    run.binding.dx = run.dx = [None, run.dx[1]]
    rebind(run)
    run.run()
    close(run.dx[1], ref.dx[1], "dx1")
    for k, g in run.dp.items():
        if g is not None:
            close(g, ref.dp[k], k)


@pytest.mark.parametrize("case", [1, 4])
def test_mha_threads_split_samples_bitwise(case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Split over numba's threads (samples per thread, each GEMM on one BLAS thread), attention
    gives the bits of the serial kernels, forward and backward."""
    mod = kernel_module("multi_head_attention")
    ref = mha_run(*MHA_CASES[case], n=5).run()
    monkeypatch.setattr(mod, "SPLIT_MACS", 0)
    calls = []
    for name in ("forward_par", "backward_par"):
        kernel = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, k=kernel: calls.append(a[-1]) or k(*a))
    run = mha_run(*MHA_CASES[case], n=5)
    rebind(run)
    run.run()
    assert calls == ([2, 2] if numba.get_num_threads() >= 2 else [])  # nt: the workspace holds 2
    np.testing.assert_array_equal(run.y, ref.y)
    for i, g in enumerate(run.dx):
        np.testing.assert_array_equal(g, ref.dx[i], err_msg=f"dx{i}")
    for k, g in run.dp.items():
        np.testing.assert_array_equal(g, ref.dp[k], err_msg=k)
