"""Parity (vs PyTorch) and gradient checks of the pools' geometry options (issue 12): ceil_mode,
dilation (max pools), per-side padding and count_include_pad's divisor at ceil_mode windows, on
maxpool2d, avgpool2d and the 1-d pools (which run the 2-d kernels on [N, C, 1, L] views), alone
and in a network through the executor and the whole-step code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import OpRun, gradcheck, per_op_and_whole_step

from netc.compiler.ops import OPS
from netc.compiler.ops.base import TensorType
from netc.compiler.ops.conv2d import pads4
from netc.compiler.ops.maxpool1d import Pool1d
from netc.compiler.ops.maxpool2d import Pool2d
from netc.runtime.kernels._windows import is_fast_pool, pool_geometry

RTOL, ATOL = 1e-4, 1e-4


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=grad)


def close(got: np.ndarray, want: torch.Tensor, what: str) -> None:
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)


def distinct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Values without ties, spaced 0.01 apart (an unambiguous argmax; finite differences cross no
    kink)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) * 0.01


def torch_pool(op: str, attrs: dict[str, Any], xt: torch.Tensor) -> Any:
    """PyTorch's pool for netc's attributes, as (y, argmax or None). Uneven padding is PyTorch's
    pool without padding on the input padded explicitly (-inf for max, 0 for avg, the average's
    divisor counted from a padded mask), cropped to netc's output: PyTorch's ceil_mode rule then
    sees the padding as input and may keep one more window, which netc's rule (the window must
    start inside the input or its leading padding) drops."""
    a = OPS[op].fill_defaults(attrs)
    out_hw = OPS[op].shape(a, [TensorType(tuple(xt.shape[1:]))]).shape[1:]
    one_d = op.endswith("1d")
    if one_d:
        a, xt = Pool1d.as_pool2d(a), xt[:, :, None, :]
    k, s, d, (pt, pb, pl, pr) = Pool2d.geometry(a)
    ceil, include = a["ceil_mode"], a.get("count_include_pad", True)
    if pt == pb and pl == pr:
        if op.startswith("max"):
            y, idx = F.max_pool2d(xt, k, s, (pt, pl), d, ceil, return_indices=True)
        else:
            y, idx = F.avg_pool2d(xt, k, s, (pt, pl), ceil, include), None
    elif op.startswith("max"):
        y, idx = F.max_pool2d(
            F.pad(xt, (pl, pr, pt, pb), value=-np.inf), k, s, 0, d, ceil, return_indices=True
        )
        wp, w = xt.shape[3] + pl + pr, xt.shape[3]
        idx = (idx // wp - pt) * w + idx % wp - pl  # into the unpadded plane
    else:
        total = F.avg_pool2d(F.pad(xt, (pl, pr, pt, pb)), k, s, 0, ceil, divisor_override=1)
        # the divisor: the window's cells inside the padded input, or inside the input
        mask = F.pad(torch.ones(1, 1, *xt.shape[2:], dtype=xt.dtype), (pl, pr, pt, pb), value=float(include))
        y, idx = total / F.avg_pool2d(mask, k, s, 0, ceil, divisor_override=1), None
    if (pt, pl) != (pb, pr):  # even padding is PyTorch's own pool, its output size unedited
        y = y[..., : 1 if one_d else out_hw[0], : out_hw[-1]]
        idx = idx[..., : y.shape[2], : y.shape[3]] if idx is not None else None
    return (y[:, :, 0], idx[:, :, 0] if idx is not None else None) if one_d else (y, idx)


def check(op: str, attrs: dict[str, Any], x: np.ndarray) -> OpRun:
    """y, the saved argmax and dx of netc's op equal PyTorch's."""
    run = OpRun(op, attrs, [x]).run()
    xt = t(run.x[0], True)
    yt, idx = torch_pool(op, attrs, xt)
    assert run.y.shape == tuple(yt.shape), (run.y.shape, yt.shape)
    yt.backward(t(run.dy))
    close(run.y, yt, "y")
    if idx is not None:
        np.testing.assert_array_equal(run.saved["argmax"], idx.numpy())
    close(run.dx[0], xt.grad, "dx")
    return run


CASES_2D = [
    # (attributes, per-sample shape)
    ({"kernel": 3, "stride": 2, "ceil_mode": True}, (2, 6, 7)),  # a last window over the edge
    ({"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 5, 6)),  # a window dropped
    ({"kernel": 2, "ceil_mode": True}, (2, 5, 7)),  # 2x2/2 on odd sizes: not the fast loops
    ({"kernel": 3, "stride": 4, "ceil_mode": True}, (1, 5, 4)),  # stride past the kernel
    ({"kernel": 3, "stride": 1, "padding": [1, 0, 0, 1]}, (2, 5, 6)),  # per side
    ({"kernel": [2, 3], "stride": 2, "padding": [0, 1, 1, 1], "ceil_mode": True}, (2, 6, 7)),
]
DILATED = [
    ({"kernel": 3, "stride": 1, "padding": 1, "dilation": 2}, (2, 7, 6)),
    ({"kernel": 2, "stride": 2, "padding": [1, 1, 0, 1], "dilation": [2, 3], "ceil_mode": True}, (2, 6, 8)),
]


@pytest.mark.parametrize(("attrs", "shape"), CASES_2D + DILATED)
def test_maxpool2d_options_parity(attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    check("maxpool2d", attrs, distinct((3, *shape)))


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize(("attrs", "shape"), CASES_2D)
def test_avgpool2d_options_parity(attrs: dict[str, Any], shape: tuple[int, ...], include: bool) -> None:
    x = np.random.default_rng(1).standard_normal((3, *shape))
    check("avgpool2d", {**attrs, "count_include_pad": include}, x)


def test_avgpool2d_divisor_clips_to_the_padded_input() -> None:
    # ones [1, 1, 4, 4], kernel 3, stride 2, padding 1, ceil_mode: Ho = Wo = 3, and the last
    # windows start at row/column 3 and hang over the padded extent [-1, 5) by one: their window
    # in it is 2 long. count_include_pad divides the bottom row's sums 2, 3, 1 (input cells) by
    # 2·3, 2·3, 2·2, as PyTorch; without it every output is 1
    attrs = {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    x = np.ones((1, 1, 4, 4))
    inc = OpRun("avgpool2d", attrs, [x]).run()
    exc = OpRun("avgpool2d", {**attrs, "count_include_pad": False}, [x]).run()
    want = F.avg_pool2d(t(x), 3, 2, 1, ceil_mode=True).numpy()
    np.testing.assert_allclose(inc.y, want, rtol=1e-6)
    np.testing.assert_allclose(inc.y[0, 0, 2], [2 / 6, 3 / 6, 1 / 4], rtol=1e-6)
    np.testing.assert_allclose(exc.y, np.ones((1, 1, 3, 3)), rtol=1e-6)


def test_fast_loops_only_where_windows_tile_the_input() -> None:
    def geo(attrs: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
        return pool_geometry(OpRun("maxpool2d", attrs, [distinct((1, *shape))]).binding)

    assert is_fast_pool(geo({"kernel": 2}, (1, 5, 7)))  # floor: the last row and column unread
    assert is_fast_pool(geo({"kernel": 2, "padding": [0, 1, 0, 1]}, (1, 4, 6)))  # padding unread
    assert not is_fast_pool(geo({"kernel": 2, "ceil_mode": True}, (1, 5, 6)))
    assert not is_fast_pool(geo({"kernel": 2, "dilation": [1, 2]}, (1, 4, 6)))


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("maxpool2d", DILATED[1][0]),
        ("avgpool2d", {**CASES_2D[5][0], "count_include_pad": True}),
        ("avgpool2d", {**CASES_2D[1][0], "count_include_pad": False}),
        ("maxpool1d", {"kernel": 3, "stride": 2, "padding": [1, 0], "dilation": 2, "ceil_mode": True}),
        ("avgpool1d", {"kernel": 4, "stride": 3, "padding": [2, 1], "ceil_mode": True}),
    ],
)
def test_pool_options_gradcheck(op: str, attrs: dict[str, Any]) -> None:
    shape = (2, 3, 11) if op.endswith("1d") else (2, 2, 6, 8)
    gradcheck(OpRun(op, attrs, [distinct(shape, seed=7) * 100], dtype=np.float64))


CASES_1D = [
    ({"kernel": 3, "stride": 2, "ceil_mode": True}, (2, 10)),
    ({"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 9)),  # a window dropped
    ({"kernel": 4, "stride": 3, "padding": [2, 1], "ceil_mode": True}, (2, 11)),
    ({"kernel": 3, "stride": 1, "padding": [0, 1]}, (3, 7)),
]


@pytest.mark.parametrize("op", ["maxpool1d", "avgpool1d"])
@pytest.mark.parametrize(("attrs", "shape"), CASES_1D)
def test_pool1d_options_parity(op: str, attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    x = distinct((3, *shape))
    check(op, attrs, x)
    if op == "avgpool1d":
        check(op, {**attrs, "count_include_pad": False}, x)


def test_maxpool1d_dilation_parity() -> None:
    check(
        "maxpool1d",
        {"kernel": 3, "stride": 2, "padding": 1, "dilation": 3, "ceil_mode": True},
        distinct((2, 3, 13)),
    )


def test_pads_take_conv2d_forms() -> None:
    for padding, want in [(1, (1, 1, 1, 1)), ([1, 0], (1, 1, 0, 0)), ([0, 1, 1, 0], (0, 1, 1, 0))]:
        assert Pool2d.geometry(OPS["maxpool2d"].fill_defaults({"kernel": 3, "padding": padding}))[3] == want
        assert pads4({"padding": padding, "stride": 1}, (3, 3), (1, 1)) == want


# -- in a network -----------------------------------------------------------------------------------

# the pools' attributes, as NET spells them
P1 = {"kernel": 3, "stride": 2, "dilation": [1, 2], "padding": [1, 0, 1, 1], "ceil_mode": True}
A1 = {"kernel": 2, "stride": 2, "padding": [0, 1, 1, 0], "ceil_mode": True, "count_include_pad": False}
NET = """\
netc: 1
name: pools
inputs:
  x: {shape: [2, 11, 9]}
  label: {shape: [], dtype: int64}
modules:
  c1: {op: conv2d, in: x, out_channels: 4, kernel: 3, padding: 1}
  r1: {op: relu, in: c1}
  p1: {op: maxpool2d, in: r1, kernel: 3, stride: 2, dilation: [1, 2], padding: [1, 0, 1, 1],
       ceil_mode: true}
  a1: {op: avgpool2d, in: p1, kernel: 2, stride: 2, padding: [0, 1, 1, 0], ceil_mode: true,
       count_include_pad: false}
  f: {op: flatten, in: a1}
  fc: {op: linear, in: f, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [fc, label]}
outputs: [fc]
"""


def test_a_network_with_pool_options_equals_pytorch_and_runs_whole_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # relu fused into the conv before a ceil_mode dilated max pool with per-side padding, then an
    # average pool hanging over its padding: loss and every gradient equal PyTorch's, and the
    # whole-step native code runs it bit for bit
    (tmp_path / "pools.yaml").write_text(NET)
    per_op, inputs = per_op_and_whole_step(monkeypatch, tmp_path / "pools.yaml")
    assert per_op._fused_in_kernel == {"r1"}

    p = {k: t(v.copy(), True) for k, v in per_op.parameters().items()}
    h = F.relu(F.conv2d(t(inputs["x"].astype(np.float32)), p["c1.w"], p["c1.b"], padding=1))
    h, _ = torch_pool("avgpool2d", A1, torch_pool("maxpool2d", P1, h)[0])
    loss = F.cross_entropy(F.linear(h.flatten(1), p["fc.w"], p["fc.b"]), torch.tensor(inputs["label"]))
    loss.backward()
    assert abs(per_op.losses()["ce"] - loss.item()) < 1e-5
    for k, v in p.items():
        np.testing.assert_allclose(per_op.grad(k), v.grad.numpy(), rtol=RTOL, atol=1e-5, err_msg=k)
