"""Parity (vs PyTorch) and gradient checks of the 1-d conv group: conv1d, maxpool1d, avgpool1d
and global_maxpool, which run the 2-d kernels on [N, C, 1, L] views (runtime/kernels/conv1d.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import OpRun, check_fused_epilogue, gradcheck, per_op_and_whole_step

from netc.compiler.ops import OPS
from netc.compiler.ops.base import ShapeError, TensorType
from netc.runtime.kernels import kernel_module

RTOL, ATOL = 1e-4, 1e-4


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=grad)


def close(got: np.ndarray, want: torch.Tensor, what: str) -> None:
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)


def rand(shape: tuple[int, ...], seed: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def check(run: OpRun, torch_fn: Any, params: tuple[str, ...] = ()) -> None:
    """y, dx and the parameter gradients of ``run`` equal torch_fn(x, *params)'s."""
    xt = t(run.x[0], True)
    pt = [t(run.params[k], True) if k in run.params else None for k in params]
    yt = torch_fn(xt, *pt)
    yt.backward(t(run.dy))
    close(run.y, yt, "y")
    close(run.dx[0], xt.grad, "dx")
    for k, p in zip(params, pt, strict=True):
        if p is not None:
            close(run.dp[k], p.grad, f"d{k}")


# -- conv1d -----------------------------------------------------------------------------------------

CONV_CASES = [
    # (attributes, per-sample input shape)
    ({"out_channels": 4, "kernel": 3, "padding": 1}, (3, 11)),
    ({"out_channels": 4, "kernel": 2, "stride": 2, "padding": "valid", "bias": False}, (3, 9)),
    ({"out_channels": 4, "kernel": 3, "padding": "same", "dilation": 2}, (3, 10)),
    ({"out_channels": 3, "kernel": 4, "padding": "same"}, (2, 7)),  # the odd one on the right
    ({"out_channels": 6, "kernel": 3, "stride": 2, "padding": [0, 2], "groups": 3}, (3, 12)),
    ({"out_channels": 8, "kernel": 5, "padding": 2, "groups": 4}, (4, 9)),  # depthwise, multiplier 2
    ({"out_channels": 5, "kernel": 1}, (3, 6)),  # 1x1: no im2col
    ({"out_channels": 6, "kernel": 5, "padding": 2}, (1, 30)),  # one channel: the direct kernels
    ({"out_channels": 8, "kernel": 3, "padding": 1}, (16, 20)),  # 16 channels: the forward by rows
]


def torch_conv1d(attrs: dict[str, Any]) -> Any:
    p = attrs.get("padding", 0)
    kw = {k: attrs[k] for k in ("stride", "dilation", "groups") if k in attrs}

    def f(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if isinstance(p, list):
            return F.conv1d(F.pad(x, tuple(p)), w, b, **kw)
        return F.conv1d(x, w, b, padding=p, **kw)

    return f


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(("attrs", "shape"), CONV_CASES)
def test_conv1d_parity(attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    run = OpRun("conv1d", attrs, [rand((3, *shape))])
    assert run.params["w"].shape == (
        attrs["out_channels"],
        shape[0] // attrs.get("groups", 1),
        attrs["kernel"],
    )
    for _ in range(2):  # a second step gives the same (gradients overwrite, not accumulate)
        run.run()
        check(run, torch_conv1d(attrs), ("w", "b"))


@pytest.mark.parametrize(("attrs", "shape"), [CONV_CASES[i] for i in (0, 2, 4, 7)])
def test_conv1d_gradcheck(attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    gradcheck(OpRun("conv1d", attrs, [rand((2, *shape))], dtype=np.float64))


def test_conv1d_accumulates_dx_and_fuses_an_activation() -> None:
    attrs, shape = CONV_CASES[4]
    run = OpRun("conv1d", attrs, [rand((2, *shape))])
    run.binding.acc[0] = True
    run.forward, run.backward = kernel_module("conv1d").bind_cpu(run.binding)
    before = rand(run.dx[0].shape, 5).astype(np.float32)
    run.dx[0][:] = before
    run.run()
    xt = t(run.x[0], True)
    torch_conv1d(attrs)(xt, t(run.params["w"]), t(run.params["b"])).backward(t(run.dy))
    np.testing.assert_allclose(run.dx[0], before + xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    check_fused_epilogue("conv1d", attrs, rand((2, *shape)), "relu")


def test_conv1d_contract_is_conv2d_on_a_row() -> None:
    conv1d, conv2d = OPS["conv1d"], OPS["conv2d"]
    a1 = conv1d.fill_defaults({"out_channels": 8, "kernel": 5, "stride": 2, "padding": 2, "groups": 2})
    a2 = conv2d.fill_defaults(
        {"out_channels": 8, "kernel": [1, 5], "stride": [1, 2], "padding": [0, 2], "groups": 2}
    )
    x1, x2 = TensorType((4, 50)), TensorType((4, 1, 50))
    y1, y2 = conv1d.shape(a1, [x1]), conv2d.shape(a2, [x2])
    assert y1.shape == (8, 25) and y2.shape == (8, 1, 25)
    assert conv1d.flops(a1, [x1], y1) == conv2d.flops(a2, [x2], y2)
    assert conv1d.workspace(a1, [x1], y1, 64) == conv2d.workspace(a2, [x2], y2, 64)
    (w1, b1), (w2, b2) = conv1d.params(a1, [x1]), conv2d.params(a2, [x2])
    assert w1.shape == (8, 2, 5) and (w1.fan_in, w1.fan_out) == (w2.fan_in, w2.fan_out) == (10, 40)
    assert b1 == b2


@pytest.mark.parametrize(
    ("op", "attrs", "shape", "message"),
    [
        ("conv1d", {"out_channels": 8, "kernel": 3, "groups": 2}, (3, 9), "groups=2 must divide"),
        (
            "conv1d",
            {"out_channels": 4, "kernel": 7, "padding": [1, 0]},
            (3, 5),
            "kernel 7 is longer than the padded input 6",
        ),
        (
            "conv1d",
            {"out_channels": 4, "kernel": 3, "stride": 2, "padding": "same"},
            (3, 9),
            'padding "same" needs stride 1',
        ),
        ("conv1d", {"out_channels": 4, "kernel": 3}, (3, 9, 9), "[N, C, L]"),
        ("maxpool1d", {"kernel": 6}, (3, 5), "kernel 6 is longer than the padded input 5"),
        ("avgpool1d", {"kernel": 3, "padding": 2}, (3, 5), "padding 2 must be at most half the kernel 3"),
        ("global_maxpool", {}, (3,), "[N, C, ...spatial]"),
    ],
)
def test_shape_errors(op: str, attrs: dict[str, Any], shape: tuple[int, ...], message: str) -> None:
    contract = OPS[op]
    with pytest.raises(ShapeError) as e:
        contract.shape(contract.fill_defaults(attrs), [TensorType(shape)])
    assert message in str(e.value)


# -- maxpool1d, avgpool1d ---------------------------------------------------------------------------

POOL_CASES = [
    ({"kernel": 2}, (3, 10)),
    ({"kernel": 3, "stride": 2, "padding": 1}, (2, 11)),
    ({"kernel": 4, "stride": 1, "padding": 2}, (2, 7)),
    ({"kernel": 5, "stride": 3}, (4, 17)),
]


def torch_pool(op: str, attrs: dict[str, Any]) -> Any:
    k, s, p = attrs["kernel"], attrs.get("stride"), attrs.get("padding", 0)
    if op == "maxpool1d":
        return lambda x: F.max_pool1d(x, k, s, p)
    return lambda x: F.avg_pool1d(x, k, s, p, count_include_pad=attrs.get("count_include_pad", True))


@pytest.mark.parametrize("op", ["maxpool1d", "avgpool1d"])
@pytest.mark.parametrize(("attrs", "shape"), POOL_CASES)
def test_pool1d_parity(op: str, attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    run = OpRun(op, attrs, [rand((3, *shape))]).run()
    check(run, torch_pool(op, attrs))


def test_avgpool1d_excluding_padding() -> None:
    attrs = {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}
    check(OpRun("avgpool1d", attrs, [rand((2, 3, 8))]).run(), torch_pool("avgpool1d", attrs))


def test_maxpool1d_argmax_and_ties() -> None:
    # ties: the first maximum takes the gradient, as PyTorch
    x = np.array([[[1.0, 3.0, 3.0, 2.0, 2.0, 0.0]]])
    run = OpRun("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1}, [x]).run()
    xt = t(run.x[0], True)
    y, idx = F.max_pool1d(xt, 3, 2, 1, return_indices=True)
    y.backward(t(run.dy))
    np.testing.assert_array_equal(run.saved["argmax"], idx.numpy())
    close(run.dx[0], xt.grad, "dx")


@pytest.mark.parametrize("op", ["maxpool1d", "avgpool1d"])
def test_pool1d_gradcheck(op: str) -> None:
    # distinct values one apart: no near-ties for the finite differences to flip
    x = np.random.default_rng(3).permutation(2 * 3 * 11).reshape(2, 3, 11).astype(np.float64)
    gradcheck(OpRun(op, {"kernel": 3, "stride": 2, "padding": 1}, [x], dtype=np.float64))


# -- global_maxpool ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 10), (4, 5, 6), (2, 3, 4, 5), (5, 1)])
def test_global_maxpool_parity(shape: tuple[int, ...]) -> None:
    run = OpRun("global_maxpool", {}, [rand((3, *shape))]).run()
    axes = tuple(range(2, len(shape) + 1))
    check(run, lambda x: torch.amax(x, dim=axes))


def test_global_maxpool_ties_and_nan() -> None:
    # PyTorch's max pools (adaptive_max_pool1d to one cell): the first maximum of a tie takes the
    # gradient, and a NaN wins (the last one)
    x = np.array([[[2.0, 5.0, 5.0, 1.0], [0.0, np.nan, 3.0, np.nan]]])
    run = OpRun("global_maxpool", {}, [x], dy=np.array([[1.0, 1.0]])).run()
    y, idx = F.adaptive_max_pool1d(t(x), 1, return_indices=True)
    assert run.y[0, 0] == 5 and np.isnan(run.y[0, 1]) and np.isnan(y[0, 1, 0].item())
    np.testing.assert_array_equal(run.saved["argmax"], idx[..., 0].numpy())
    np.testing.assert_array_equal(run.dx[0], [[[0, 1, 0, 0], [0, 0, 0, 1]]])


def test_global_maxpool_gradcheck() -> None:
    x = np.random.default_rng(4).permutation(2 * 3 * 20).reshape(2, 3, 4, 5).astype(np.float64)
    gradcheck(OpRun("global_maxpool", {}, [x], dtype=np.float64))


# -- in a network -----------------------------------------------------------------------------------

NET = """\
netc: 1
name: net1d
inputs:
  x: {shape: [4, 40]}
  label: {shape: [], dtype: int64}
modules:
  c1: {op: conv1d, in: x, out_channels: 8, kernel: 5, padding: 2}
  r1: {op: relu, in: c1}
  p1: {op: maxpool1d, in: r1, kernel: 2}
  c2: {op: conv1d, in: p1, out_channels: 8, kernel: 3, groups: 2, dilation: 2, padding: same}
  a2: {op: avgpool1d, in: c2, kernel: 3, stride: 2, padding: 1}
  g: {op: global_maxpool, in: a2}
  fc: {op: linear, in: g, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [fc, label]}
outputs: [fc]
"""


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_a_1d_network_equals_pytorch_and_runs_whole_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # conv1d with relu fused into its kernel, the pools and global_maxpool through the executor:
    # loss and every gradient equal PyTorch's twin; the whole-step native code runs it bit for bit
    (tmp_path / "net1d.yaml").write_text(NET)
    per_op, inputs = per_op_and_whole_step(monkeypatch, tmp_path / "net1d.yaml")
    assert per_op._fused_in_kernel == {"r1"}

    p = {k: t(v.copy(), True) for k, v in per_op.parameters().items()}
    h = F.max_pool1d(F.relu(F.conv1d(t(inputs["x"].astype(np.float32)), p["c1.w"], p["c1.b"], padding=2)), 2)
    h = F.conv1d(h, p["c2.w"], p["c2.b"], padding="same", dilation=2, groups=2)
    h = torch.amax(F.avg_pool1d(h, 3, 2, 1), dim=2)
    loss = F.cross_entropy(F.linear(h, p["fc.w"], p["fc.b"]), torch.tensor(inputs["label"]))
    loss.backward()
    assert abs(per_op.losses()["ce"] - loss.item()) < 1e-5
    for k, v in p.items():
        np.testing.assert_allclose(per_op.grad(k), v.grad.numpy(), rtol=RTOL, atol=1e-5, err_msg=k)


FOLD = """\
netc: 1
inputs:
  x: {shape: [3, 12]}
  y: {shape: [], dtype: int64}
modules:
  c: {op: conv1d, in: x, out_channels: 4, kernel: 3, padding: 1, groups: 1}
  bn: {op: batchnorm1d, in: c}
  r: {op: relu, in: bn}
  g: {op: global_maxpool, in: r}
  logits: {op: linear, in: g, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


def test_a_batchnorm1d_after_conv1d_folds_into_it_for_inference(tmp_path: Any) -> None:
    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.executor import Executor

    (tmp_path / "fold.yaml").write_text(FOLD)
    net = netc.load(tmp_path / "fold.yaml")
    plan = net.compile(4, mode="inference")
    assert [s.fold for s in plan.steps if s.fold] == ["bn"]
    train = Executor(net.compile(4), 4, seed=1)
    train.training = False
    rng = np.random.default_rng(0)
    for p in train.plan.params:  # statistics and affine parameters away from (1, 0)
        if p.role in ("stat", "norm"):
            train.param(p.name)[...] = rng.uniform(0.5, 1.5, p.shape)
    inf = Executor(plan, 4)
    inf.params[...] = train.params
    inputs = random_inputs(plan, 4, seed=3)
    train.forward(inputs)
    inf.forward(inputs)
    np.testing.assert_allclose(inf.outputs()["logits"], train.outputs()["logits"], rtol=1e-5, atol=1e-6)
