"""Parity (vs PyTorch) and gradient checks of the decoder's ops: conv_transpose2d (conv2d's kernels
on the mirror convolution, runtime/kernels/conv_transpose2d.py) and upsample (nearest, bilinear)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness import OpRun, gradcheck

from netc.compiler.ops import OPS
from netc.compiler.ops.base import ShapeError, TensorType
from netc.runtime.kernels import kernel_module

RTOL, ATOL = 1e-4, 1e-4


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=grad)


def rand(shape: tuple[int, ...], seed: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def tup(attrs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: tuple(attrs[k]) if isinstance(attrs[k], list) else attrs[k] for k in keys if k in attrs}


def check(run: OpRun, torch_fn: Any, params: tuple[str, ...] = (), before: np.ndarray | None = None) -> None:
    """y, dx (on top of ``before`` when it accumulates) and the parameter gradients of ``run``
    equal torch_fn(x, *params)'s."""
    xt = t(run.x[0], True)
    pt = [t(run.params[k], True) if k in run.params else None for k in params]
    yt = torch_fn(xt, *pt)
    yt.backward(t(run.dy))
    np.testing.assert_allclose(run.y, yt.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="y")
    dx = xt.grad.numpy() + (0 if before is None else before)
    np.testing.assert_allclose(run.dx[0], dx, rtol=RTOL, atol=ATOL, err_msg="dx")
    for k, p in zip(params, pt, strict=True):
        if p is not None:
            np.testing.assert_allclose(run.dp[k], p.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"d{k}")


# -- conv_transpose2d -------------------------------------------------------------------------------

CONVT_CASES = [
    # (attributes, per-sample input shape)
    ({"out_channels": 4, "kernel": 3}, (3, 5, 6)),
    ({"out_channels": 4, "kernel": 2, "stride": 2}, (3, 5, 5)),  # the U-Net's up-step
    (
        {
            "out_channels": 6,
            "kernel": 3,
            "stride": 2,
            "padding": 1,
            "output_padding": 1,
            "groups": 3,
            "bias": False,
        },
        (3, 4, 5),
    ),
    # output_padding below the dilation at stride 1 (vertical), per-axis attributes
    (
        {
            "out_channels": 4,
            "kernel": [3, 2],
            "stride": [1, 2],
            "padding": [1, 0],
            "dilation": 2,
            "output_padding": 1,
        },
        (2, 5, 4),
    ),
    ({"out_channels": 8, "kernel": 3, "padding": 1}, (16, 6, 6)),  # 16 channels out of the mirror
    ({"out_channels": 3, "kernel": 1}, (4, 5, 5)),  # 1x1: no im2col
    ({"out_channels": 2, "kernel": 5, "padding": 2}, (1, 6, 6)),  # the mirror takes the direct kernels
]


def torch_convt(attrs: dict[str, Any]) -> Any:
    kw = tup(attrs, ("stride", "padding", "output_padding", "dilation", "groups"))
    return lambda x, w, b: F.conv_transpose2d(x, w, b, **kw)


@pytest.mark.parametrize(("attrs", "shape"), CONVT_CASES)
def test_conv_transpose2d_parity(attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    run = OpRun("conv_transpose2d", attrs, [rand((3, *shape))])
    assert run.params["w"].shape[:2] == (shape[0], attrs["out_channels"] // attrs.get("groups", 1))
    for _ in range(2):  # a second step gives the same (gradients overwrite, not accumulate)
        run.run()
        check(run, torch_convt(attrs), ("w", "b"))


@pytest.mark.parametrize("case", [1, 2, 6])
def test_conv_transpose2d_accumulates_dx(case: int) -> None:
    # an input read by two modules: the mirror's forward goes through the stage, then adds
    attrs, shape = CONVT_CASES[case]
    run = OpRun("conv_transpose2d", attrs, [rand((2, *shape))])
    run.binding.acc[0] = True
    run.forward, run.backward = kernel_module("conv_transpose2d").bind_cpu(run.binding)
    before = rand(run.dx[0].shape, 5).astype(np.float32)
    run.dx[0][:] = before
    run.run()
    check(run, torch_convt(attrs), ("w", "b"), before)


@pytest.mark.parametrize("case", [1, 2, 3])
def test_conv_transpose2d_gradcheck(case: int) -> None:
    attrs, shape = CONVT_CASES[case]
    gradcheck(OpRun("conv_transpose2d", attrs, [rand((2, *shape))], dtype=np.float64))


def test_conv_transpose2d_contract() -> None:
    # PyTorch's parameter layout, fans (from w.size(1)) and output size; FLOPs of the mirror
    op = OPS["conv_transpose2d"]
    a = op.fill_defaults(
        {"out_channels": 6, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2}
    )
    x = TensorType((4, 5, 7))
    y = op.shape(a, [x])
    m = torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2)
    assert y.shape == tuple(m(torch.zeros(1, 4, 5, 7)).shape[1:]) == (6, 10, 14)
    w, b = op.params(a, [x])
    assert w.shape == tuple(m.weight.shape) == (4, 3, 3, 3) and b.shape == (6,)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
    assert (w.fan_in, w.fan_out) == (fan_in, fan_out) == (27, 36)
    macs = 5 * 7 * 4 * 3 * 9  # every input cell times O/g·kh·kw taps
    assert op.flops(a, [x], y) == (2 * macs + y.numel, 4 * macs + y.numel)


# -- upsample ---------------------------------------------------------------------------------------

UP_CASES = [
    {"scale_factor": 2},
    {"scale_factor": [2, 3]},
    {"size": [7, 5]},
    {"scale_factor": [0.6, 2.5]},  # non-integer: PyTorch's float32 source index
    {"size": 13},
    {"mode": "bilinear", "scale_factor": 2},
    {"mode": "bilinear", "scale_factor": 2, "align_corners": True},
    {"mode": "bilinear", "size": [7, 11]},
    {"mode": "bilinear", "size": [7, 11], "align_corners": True},
    {"mode": "bilinear", "scale_factor": [1.3, 2.7]},
    {"mode": "bilinear", "scale_factor": 0.45},  # downsampling
    {"mode": "bilinear", "size": [1, 3], "align_corners": True},  # one row: scale 0
]


def torch_up(attrs: dict[str, Any]) -> Any:
    kw = tup(attrs, ("mode", "scale_factor", "size", "align_corners"))
    return lambda x: F.interpolate(x, **kw)


@pytest.mark.parametrize("attrs", UP_CASES)
def test_upsample_parity(attrs: dict[str, Any]) -> None:
    check(OpRun("upsample", attrs, [rand((2, 3, 5, 6))]).run(), torch_up(attrs))


def test_upsample_nearest_picks_pytorchs_cells() -> None:
    # 1/scale and the index product in float32 pick the same source cells as ATen (exactly)
    for h, s in ((10, 0.3), (7, 1.9), (9, 2.2), (11, 1 / 3)):
        x = np.arange(h, dtype=np.float64).reshape(1, 1, h, 1).repeat(2, 3)
        run = OpRun("upsample", {"scale_factor": [s, 1]}, [x]).run()
        np.testing.assert_array_equal(run.y, F.interpolate(t(run.x[0]), scale_factor=(s, 1)).numpy())


@pytest.mark.parametrize("acc", [False, True])
def test_upsample_accumulates_dx(acc: bool) -> None:
    attrs = {"mode": "bilinear", "scale_factor": [1.5, 2]}
    run = OpRun("upsample", attrs, [rand((2, 2, 4, 5))])
    run.binding.acc[0] = acc
    run.forward, run.backward = kernel_module("upsample").bind_cpu(run.binding)
    before = rand(run.dx[0].shape, 5).astype(np.float32)
    run.dx[0][:] = before
    check(run.run(), torch_up(attrs), before=before if acc else None)


@pytest.mark.parametrize("attrs", [UP_CASES[3], UP_CASES[6], UP_CASES[9]])
def test_upsample_gradcheck(attrs: dict[str, Any]) -> None:
    gradcheck(OpRun("upsample", attrs, [rand((2, 2, 4, 5))], dtype=np.float64))


# -- located errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "attrs", "shape", "message"),
    [
        (
            "conv_transpose2d",
            {"out_channels": 4, "kernel": 3, "stride": 2, "output_padding": 2},
            (3, 5, 5),
            "output_padding 2 (vertical) must be smaller than the stride 2 or the dilation 1",
        ),
        (
            "conv_transpose2d",
            {"out_channels": 4, "kernel": 3, "output_padding": [0, 1], "dilation": [1, 2]},
            (3, 5, 5),
            "output_padding 1 (horizontal) at stride 1 needs padding >= 1, got 0",
        ),
        (
            "conv_transpose2d",
            {"out_channels": 4, "kernel": 3, "groups": 2},
            (3, 5, 5),
            "groups=2 must divide",
        ),
        (
            "conv_transpose2d",
            {"out_channels": 4, "kernel": 2, "padding": 2},
            (3, 2, 2),
            "output would be -1 rows",
        ),
        ("conv_transpose2d", {"out_channels": 4, "kernel": 2}, (3, 5), "[N, C, H, W]"),
        ("upsample", {}, (3, 5, 5), "exactly one of scale_factor and size, got neither"),
        ("upsample", {"scale_factor": 2, "size": [4, 4]}, (3, 5, 5), "got both"),
        ("upsample", {"scale_factor": 2, "align_corners": False}, (3, 5, 5), "for mode bilinear only"),
        ("upsample", {"scale_factor": 0.1}, (3, 5, 5), "gives an empty output [0, 0]"),
    ],
)
def test_shape_errors(op: str, attrs: dict[str, Any], shape: tuple[int, ...], message: str) -> None:
    contract = OPS[op]
    with pytest.raises(ShapeError) as e:
        contract.shape(contract.fill_defaults(attrs), [TensorType(shape)])
    assert message in str(e.value)
