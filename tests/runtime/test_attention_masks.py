"""multi_head_attention with separate key and value inputs of their own widths (kdim, vdim) and
with key-padding and attention masks (int64 as PyTorch's bool, float32 added), against
torch.nn.MultiheadAttention forward and backward, and by float64 finite differences."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from harness import OpRun, close, gradcheck, rand, t
from torch import nn

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor
from netc.spec.errors import SpecError

# (attributes, L, S, data input widths (1: self-attention, 2: [q, kv], 3: [q, k, v]),
#  masks as (kind, dtype, per-head)); E = widths[0]
CASES = [
    ({"num_heads": 2}, 4, 5, (8, 5, 3), []),
    ({"num_heads": 2, "kdim": 6, "vdim": 6}, 3, 6, (8, 6), [("key_padding", "int64", False)]),
    (
        {"num_heads": 2, "causal": True},
        5,
        5,
        (8,),
        [("key_padding", "float32", False), ("attn", "int64", False)],
    ),
    ({"num_heads": 4}, 3, 4, (8, 8, 8), [("attn", "float32", True), ("key_padding", "int64", False)]),
    ({"num_heads": 2, "causal": True, "bias": False}, 4, 4, (6,), [("attn", "float32", False)]),
    ({"num_heads": 1, "vdim": 2}, 2, 3, (4, 3, 2), [("attn", "int64", True)]),
]


def mask(kind: str, dtype: str, per_head: bool, n: int, h: int, tq: int, tk: int, seed: int) -> np.ndarray:
    """A mask that leaves key 0 open to every query (no fully masked row, causal or not)."""
    rng = np.random.default_rng(seed)
    shape = (n, tk) if kind == "key_padding" else (n, h, tq, tk) if per_head else (n, tq, tk)
    if dtype == "int64":
        m = rng.integers(0, 2, shape)
    else:
        m = rng.standard_normal(shape) * 0.5
        m[rng.random(shape) < 0.25] = -np.inf
    m[..., 0] = 0
    return m


def make_run(case: tuple, n: int = 3, dtype: Any = np.float32) -> OpRun:
    attrs, tq, tk, widths, masks = case
    attrs = {**attrs, "masks": [m[0] for m in masks]}
    d = widths[0]
    xs = [rand((n, tq, d), 21)] + [rand((n, tk, w), 22 + i) for i, w in enumerate(widths[1:])]
    xs += [mask(*m, n, attrs["num_heads"], tq, tk, 50 + i) for i, m in enumerate(masks)]
    kv = (widths[1:] * 2)[:2] if len(widths) > 1 else (d, d)  # widths of k and v
    params = {
        f"w_{p}": rand((d, w), 30 + i, 0.4) for i, (p, w) in enumerate(zip("qkvo", (d, *kv, d), strict=True))
    }
    if attrs.get("bias", True):
        params |= {f"b_{p}": rand((d,), 40 + i, 0.3) for i, p in enumerate("qkvo")}
    return OpRun("multi_head_attention", attrs, xs, params=params, dtype=dtype, seed=4)


def torch_twin(run: OpRun, case: tuple) -> tuple[nn.MultiheadAttention, list[torch.Tensor], torch.Tensor]:
    """PyTorch's module with run's parameters (packed in_proj_weight when kdim = vdim = E, else
    q/k/v_proj_weight), run on its inputs and masks; returns (module, data inputs, output)."""
    _, tq, tk, widths, masks = case
    a, p, h = run.attrs, run.params, run.attrs["num_heads"]
    d, kdim, vdim = p["w_q"].shape[1], p["w_k"].shape[1], p["w_v"].shape[1]
    dtype = torch.from_numpy(run.x[0]).dtype
    mha = nn.MultiheadAttention(d, h, bias=a["bias"], batch_first=True, kdim=kdim, vdim=vdim, dtype=dtype)
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(t(np.concatenate([p["w_q"], p["w_k"], p["w_v"]])))
        else:
            for name in "qkv":
                getattr(mha, f"{name}_proj_weight").copy_(t(p[f"w_{name}"]))
        mha.out_proj.weight.copy_(t(p["w_o"]))
        if a["bias"]:
            mha.in_proj_bias.copy_(t(np.concatenate([p["b_q"], p["b_k"], p["b_v"]])))
            mha.out_proj.bias.copy_(t(p["b_o"]))
    data = len(widths)
    xs = [t(x, True) for x in run.x[:data]]
    q, k, v = xs[0], xs[min(1, data - 1)], xs[data - 1]
    n = q.shape[0]
    kpm, am = None, torch.zeros(n, h, tq, tk, dtype=dtype)
    for (kind, dt, _), m in zip(masks, run.x[data:], strict=True):
        mt = torch.from_numpy(m) != 0 if dt == "int64" else torch.from_numpy(m)
        if kind == "key_padding":
            kpm = mt
        else:  # netc's per-sample [L, S] or [h, L, S] as PyTorch's [N·h, L, S]
            mt = mt.reshape(n, -1, tq, tk).expand(n, h, tq, tk)
            am = am.masked_fill(mt, -torch.inf) if dt == "int64" else am + mt
    if a["causal"]:
        am = am.masked_fill(torch.triu(torch.ones(tq, tk, dtype=torch.bool), 1), -torch.inf)
    with warnings.catch_warnings():  # a bool key_padding_mask with a float attn_mask: deprecated, still works
        warnings.simplefilter("ignore")
        y, _ = mha(q, k, v, key_padding_mask=kpm, attn_mask=am.reshape(n * h, tq, tk), need_weights=False)
    return mha, xs, y


def check_grads(run: OpRun, mha: nn.MultiheadAttention, xs: list[torch.Tensor]) -> None:
    for i, xt in enumerate(xs):
        close(run.dx[i], xt.grad, f"dx{i}")
    p, d = run.dp, run.params["w_q"].shape[0]
    if mha._qkv_same_embed_dim:
        for i, name in enumerate("qkv"):
            close(p[f"w_{name}"], mha.in_proj_weight.grad[i * d : (i + 1) * d], f"dw_{name}")
    else:
        for name in "qkv":
            close(p[f"w_{name}"], getattr(mha, f"{name}_proj_weight").grad, f"dw_{name}")
    close(p["w_o"], mha.out_proj.weight.grad, "dw_o")
    if run.attrs["bias"]:
        for i, name in enumerate("qkv"):
            close(p[f"b_{name}"], mha.in_proj_bias.grad[i * d : (i + 1) * d], f"db_{name}")
        close(p["b_o"], mha.out_proj.bias.grad, "db_o")


@pytest.mark.parametrize("case", range(len(CASES)))
def test_parity(case: int) -> None:
    run = make_run(CASES[case])
    mha, xs, yt = torch_twin(run, CASES[case])
    yt.backward(t(run.dy))
    run.run()
    assert np.isfinite(run.y).all()
    close(run.y, yt, "y")
    check_grads(run, mha, xs)
    assert all(g is None for g in run.dx[len(CASES[case][3]) :]), "a mask got a gradient"


@pytest.mark.parametrize("case", [0, 2, 3])
def test_gradcheck(case: int) -> None:
    gradcheck(make_run(CASES[case], n=2, dtype=np.float64))


def test_fully_masked_row_attends_to_nothing() -> None:
    """A query whose every key is masked gets a zero context (y = b_o) and no gradient through
    the scores, as PyTorch's scaled_dot_product_attention (MultiheadAttention with
    need_weights=False); its need_weights=True path gives NaN instead."""
    case = CASES[1]
    run = make_run(case)
    run.x[2][1] = 1  # sample 1: every key padded
    mha, xs, yt = torch_twin(run, case)
    yt.backward(t(run.dy))
    run.run()
    close(run.y[1], np.broadcast_to(run.params["b_o"], run.y[1].shape), "y = b_o")
    close(run.y, yt, "y")
    check_grads(run, mha, xs)
    assert not np.abs(run.dx[1][1]).any(), "no gradient reaches the keys of a fully masked sample"
    y_weights, _ = mha(*xs[:1], xs[1], xs[1], key_padding_mask=t(run.x[2]) != 0)
    assert torch.isnan(y_weights[1]).all()


# -- in a plan: masks as graph inputs, and from a module ------------------------------------------

NET = """
netc: 1
inputs:
  q: {shape: [4, 8]}
  k: {shape: [5, 6]}
  v: {shape: [5, 3]}
  pad: {shape: [5], dtype: int64}
  t: {shape: [4, 8]}
modules:
  bias: {op: linear, in: q, out_features: 5}
  att: {op: multi_head_attention, in: [q, k, v, pad, bias], num_heads: 2, causal: true,
        masks: [key_padding, attn]}
losses:
  m: {op: mse, in: [att, t]}
"""


def test_masks_in_a_plan(spec_file: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An int64 key-padding mask fed as a graph input and a float attn mask computed by a module:
    the mask gets no gradient, so its module no backward step; the whole-step code runs the plan
    bit for bit like the per-op replay."""
    plan = netc.load(spec_file(NET)).compile(3)
    back = {s.module: s for s in plan.backward_steps}
    assert set(back) == {"m", "att"}, "the module read only as a mask gets no backward step"
    assert back["att"].grad_inputs == [None, None, None, None, None]  # spec inputs, and the masks
    w_k = next(p for p in plan.params if p.name == "att.w_k")
    assert w_k.shape == [8, 6]
    inputs = random_inputs(plan, 3, seed=2)  # pad: 0/1 (no op bounds it higher)
    inputs["pad"][:, 0] = 0
    runs = []
    for mode in ("0", "sync"):
        monkeypatch.setenv("NETC_WHOLE_STEP", mode)
        ex = Executor(plan, 3, seed=3)
        assert (ex._whole is not None) == (mode == "sync"), ex.whole_step_reason
        ex.set_inputs(inputs)
        ex.step()
        runs.append(ex)
    a, b = runs
    assert a.losses() == b.losses() and np.isfinite(a.losses()["m"])
    assert np.array_equal(a.grads, b.grads) and np.abs(a.grads).sum() > 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "pad: {shape: [5]",
            "pad: {shape: [4]",
            r"key_padding mask \(input 3 'pad'\) must be \[N, 5\].*input 3 is \[N, 4\]",
        ),
        (
            "out_features: 5",
            "out_features: 3",
            r"attn mask \(input 4 'bias'\) must be \[N, 4, 5\] or \[N, 2, 4, 5\]",
        ),
        (
            "in: [q, k, v, pad, bias]",
            "in: [q, bias]",
            r"masks \['key_padding', 'attn'\] takes 1 to 3 data inputs.*but has 2 inputs",
        ),
        ("causal: true", "kdim: 5", r"kdim=5, but input 1 'k' is \[N, 5, 6\] \(width 6\)"),
        ("v: {shape: [5, 3]}", "v: {shape: [6, 3]}", r"one length S in key and value"),
    ],
)
def test_located_errors(spec_file: Any, old: str, new: str, message: str) -> None:
    """A mask of the wrong shape, a wrong kdim, key and value of two lengths: errors at the
    module's line, naming the input."""
    with pytest.raises(SpecError) as e:
        netc.load(spec_file(NET.replace(old, new))).compile(3)
    (d,) = e.value.diagnostics
    assert re.search(message, d.message), d.message
    assert "module 'att'" in d.message and d.location.line == 10  # the line of `att` and its `in` list
