"""Op contracts against PyTorch: output shapes, parameter counts, shape errors and FLOPs formulas."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netc.compiler.ops import OPS
from netc.compiler.ops.base import DTYPE_BYTES, THREADS, ShapeError, TensorType
from netc.compiler.ops.conv2d import CHUNK_BYTES

# torch notes that an even "same" kernel pads a copy of the input; irrelevant to shapes
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

T = TensorType
L = "int64"


class Fn(nn.Module):
    """A parameterless torch function as a module."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f = f

    def forward(self, *xs):
        return self.f(*xs)


class Prepend(nn.Module):
    """ViT class token: a learned [1, 1, D] row prepended along the sequence."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, 1, d))

    def forward(self, x):
        return torch.cat([self.w.expand(x.shape[0], -1, -1), x], 1)


class AddParam(nn.Module):
    def __init__(self, shape) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, x):
        return x + self.w


class Mha(nn.Module):
    def __init__(self, d: int, h: int, causal: bool = False, bias: bool = True, **kv: int) -> None:
        super().__init__()
        self.m, self.causal = nn.MultiheadAttention(d, h, bias=bias, batch_first=True, **kv), causal

    def forward(self, q, k=None, v=None):
        k = q if k is None else k
        v = k if v is None else v
        mask = torch.ones(q.shape[1], k.shape[1], dtype=torch.bool).triu(1) if self.causal else None
        return self.m(q, k, v, attn_mask=mask, need_weights=False)[0]


class Seq(nn.Module):
    """A torch recurrent layer (batch_first) giving its sequence, or with ``last`` h_n[-2:] side by side."""

    def __init__(self, net: nn.Module, last: bool = False) -> None:
        super().__init__()
        self.net, self.last = net, last
        net.batch_first = True

    def forward(self, x):
        seq, hn = self.net(x)
        hn = hn[0] if isinstance(hn, tuple) else hn
        return torch.cat(list(hn[-2:]), dim=1) if self.last else seq


def sinusoid(x):
    t, d = x.shape[1:]
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    ang = pos / 10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    return x + torch.stack([ang.sin(), ang.cos()], -1).reshape(t, d)


def maxout(pieces, axis):
    def f(x):
        a = axis % (x.dim() - 1) + 1
        s = list(x.shape)
        return x.reshape(*s[:a], s[a] // pieces, pieces, *s[a + 1 :]).amax(a + 1)

    return f


def fn(f) -> callable:
    return lambda: Fn(f)


# (op, attrs, per-sample input types, torch module factory). Labels and ids are drawn in range.
CASES = [
    ("linear", {"out_features": 7}, [T((5,))], lambda: nn.Linear(5, 7)),
    ("linear", {"out_features": 7, "bias": False}, [T((3, 5))], lambda: nn.Linear(5, 7, bias=False)),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 3, "padding": 1},
        [T((3, 8, 8))],
        lambda: nn.Conv2d(3, 4, 3, padding=1),
    ),
    ("conv2d", {"out_channels": 4, "kernel": 3, "stride": 2}, [T((3, 9, 10))], lambda: nn.Conv2d(3, 4, 3, 2)),
    (
        "conv2d",
        {"out_channels": 5, "kernel": [3, 5], "stride": [2, 1], "padding": [1, 2], "bias": False},
        [T((3, 10, 12))],
        lambda: nn.Conv2d(3, 5, (3, 5), (2, 1), (1, 2), bias=False),
    ),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 4, "padding": "same", "dilation": 2},
        [T((2, 7, 9))],
        lambda: nn.Conv2d(2, 4, 4, padding="same", dilation=2),
    ),
    (
        "conv2d",
        {"out_channels": 4, "kernel": [2, 3], "padding": "same"},
        [T((2, 6, 5))],
        lambda: nn.Conv2d(2, 4, (2, 3), padding="same"),
    ),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 3, "padding": "valid"},
        [T((2, 6, 5))],
        lambda: nn.Conv2d(2, 4, 3),
    ),
    (
        "conv2d",  # [top, bottom, left, right]; ZeroPad2d takes (left, right, top, bottom)
        {"out_channels": 4, "kernel": 3, "stride": 2, "padding": [1, 2, 0, 3]},
        [T((3, 9, 8))],
        lambda: nn.Sequential(nn.ZeroPad2d((0, 3, 1, 2)), nn.Conv2d(3, 4, 3, 2)),
    ),
    (
        "conv2d",
        {"out_channels": 6, "kernel": 3, "dilation": [2, 3], "stride": 2, "padding": 2},
        [T((3, 13, 14))],
        lambda: nn.Conv2d(3, 6, 3, 2, 2, dilation=(2, 3)),
    ),
    (
        "conv2d",
        {"out_channels": 6, "kernel": 3, "groups": 2},
        [T((4, 8, 8))],
        lambda: nn.Conv2d(4, 6, 3, groups=2),
    ),
    (
        "conv2d",  # depthwise with channel multiplier 2
        {"out_channels": 16, "kernel": 3, "groups": 8, "padding": 1, "init": "xavier_uniform"},
        [T((8, 6, 6))],
        lambda: nn.Conv2d(8, 16, 3, padding=1, groups=8),
    ),
    ("maxpool2d", {"kernel": 2}, [T((3, 8, 9))], lambda: nn.MaxPool2d(2)),
    ("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, [T((3, 9, 10))], lambda: nn.MaxPool2d(3, 2, 1)),
    (
        "maxpool2d",
        {"kernel": [3, 2], "padding": [1, 0]},
        [T((3, 10, 7))],
        lambda: nn.MaxPool2d((3, 2), padding=(1, 0)),
    ),
    ("avgpool2d", {"kernel": 2}, [T((3, 8, 9))], lambda: nn.AvgPool2d(2)),
    (
        "avgpool2d",
        {"kernel": 3, "stride": 1, "padding": 1, "count_include_pad": False},
        [T((3, 7, 5))],
        lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    ),
    (
        "avgpool2d",
        {"kernel": 4, "stride": [3, 2], "padding": 2},
        [T((2, 11, 6))],
        lambda: nn.AvgPool2d(4, (3, 2), 2),
    ),
    ("global_avgpool", {}, [T((5, 4, 3))], lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
    ("flatten", {}, [T((4, 3, 2))], lambda: nn.Flatten()),
    ("flatten", {"start_axis": 1}, [T((4, 3, 2))], lambda: nn.Flatten(2)),
    ("flatten", {"start_axis": -1}, [T((4, 3, 2))], lambda: nn.Flatten(-1)),
    ("reshape", {"shape": [6, -1]}, [T((4, 3, 2))], fn(lambda x: x.reshape(x.shape[0], 6, -1))),
    ("reshape", {"shape": [2, 2, 6]}, [T((24,))], fn(lambda x: x.reshape(x.shape[0], 2, 2, 6))),
    ("transpose", {"perm": [2, 0, 1]}, [T((4, 3, 2))], fn(lambda x: x.permute(0, 3, 1, 2))),
    ("transpose", {"perm": [-1, 0]}, [T((4, 3))], fn(lambda x: x.transpose(1, 2))),
    ("concat", {}, [T((4, 3)), T((2, 3)), T((1, 3))], fn(lambda *xs: torch.cat(xs, 1))),
    ("concat", {"axis": -1}, [T((4, 3)), T((4, 5))], fn(lambda *xs: torch.cat(xs, -1))),
    ("add", {}, [T((4, 3)), T((4, 3)), T((4, 3))], fn(lambda *xs: sum(xs))),
    ("mul", {}, [T((4, 3)), T((4, 3))], fn(torch.mul)),
    # broadcasting: per-sample shapes align on the right (torch's twin views [N, 3, 1, 1] for [3, 1, 1])
    ("add", {}, [T((3, 4, 5)), T((3, 1, 1)), T((5,))], fn(lambda a, b, c: a + b + c[:, None, None])),
    ("mul", {}, [T((1, 5)), T((4, 1))], fn(torch.mul)),
    ("sub", {}, [T((4, 3)), T((4, 3))], fn(torch.sub)),
    ("sub", {}, [T((3,)), T((2, 1))], fn(lambda a, b: a[:, None] - b)),
    ("div", {}, [T((2, 4, 3)), T((1,))], fn(lambda a, b: a / b[:, None, None])),
    ("matmul", {}, [T((4, 3)), T((3, 5))], fn(torch.matmul)),
    (
        "matmul",
        {"transpose_a": True, "transpose_b": True},
        [T((2, 3, 4)), T((5, 3))],
        fn(lambda a, b: a.transpose(-1, -2) @ b[:, None].transpose(-1, -2)),
    ),
    ("constant", {"value": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]}, [], fn(lambda: torch.ones(2, 3, 2))),
    ("constant", {"value": 2, "shape": [4, 1, 1], "dtype": "int64"}, [], fn(lambda: torch.ones(2, 4, 1, 1))),
    ("zeros", {"shape": [3, 2]}, [], fn(lambda: torch.zeros(2, 3, 2))),
    ("mean", {"axes": [0]}, [T((5, 3))], fn(lambda x: x.mean(1))),
    ("mean", {"axes": [-1, 0], "keepdims": True}, [T((5, 3, 2))], fn(lambda x: x.mean((1, 3), keepdim=True))),
    ("select", {"axis": 0, "index": 0}, [T((5, 3))], fn(lambda x: x[:, 0])),
    ("select", {"axis": -1, "index": -2}, [T((5, 3, 4))], fn(lambda x: x[..., -2])),
    ("dropout", {"p": 0.1}, [T((5, 3))], lambda: nn.Dropout(0.1)),
    ("batchnorm1d", {}, [T((6,))], lambda: nn.BatchNorm1d(6)),
    ("batchnorm1d", {"affine": False}, [T((6, 5))], lambda: nn.BatchNorm1d(6, affine=False)),
    ("batchnorm2d", {"momentum": 0.01}, [T((6, 5, 4))], lambda: nn.BatchNorm2d(6, momentum=0.01)),
    ("layernorm", {}, [T((5, 8))], lambda: nn.LayerNorm(8)),
    ("layernorm", {"normalized_axes": 2}, [T((3, 5, 8))], lambda: nn.LayerNorm([5, 8])),
    ("layernorm", {"affine": False}, [T((8,))], lambda: nn.LayerNorm(8, elementwise_affine=False)),
    ("groupnorm", {"num_groups": 2}, [T((6, 5, 4))], lambda: nn.GroupNorm(2, 6)),
    ("groupnorm", {"num_groups": 6, "affine": False}, [T((6,))], lambda: nn.GroupNorm(6, 6, affine=False)),
    ("groupnorm", {"num_groups": 1}, [T((4, 3, 2, 5))], lambda: nn.GroupNorm(1, 4)),
    ("instancenorm", {}, [T((6, 5))], lambda: nn.InstanceNorm1d(6)),
    ("instancenorm", {"affine": True}, [T((6, 5, 4))], lambda: nn.InstanceNorm2d(6, affine=True)),
    (
        "instancenorm",
        {"affine": True, "track_running_stats": True},
        [T((6, 5, 4))],
        lambda: nn.InstanceNorm2d(6, affine=True, track_running_stats=True),
    ),
    ("relu", {}, [T((3, 4))], lambda: nn.ReLU()),
    ("leaky_relu", {"negative_slope": 0.2}, [T((3, 4))], lambda: nn.LeakyReLU(0.2)),
    ("elu", {}, [T((3, 4))], lambda: nn.ELU()),
    ("gelu", {}, [T((3, 4))], lambda: nn.GELU()),
    ("gelu", {"approximate": "tanh"}, [T((3, 4))], lambda: nn.GELU(approximate="tanh")),
    ("sigmoid", {}, [T((3, 4))], lambda: nn.Sigmoid()),
    ("tanh", {}, [T((3, 4))], lambda: nn.Tanh()),
    ("relu6", {}, [T((3, 4))], lambda: nn.ReLU6()),
    ("hardtanh", {"min_val": -2.0, "max_val": 3.0}, [T((3, 4))], lambda: nn.Hardtanh(-2.0, 3.0)),
    ("hardsigmoid", {}, [T((3, 4))], lambda: nn.Hardsigmoid()),
    ("hardswish", {}, [T((3, 4))], lambda: nn.Hardswish()),
    ("silu", {}, [T((3, 4))], lambda: nn.SiLU()),
    ("selu", {}, [T((3, 4))], lambda: nn.SELU()),
    ("softplus", {"beta": 2.0, "threshold": 10.0}, [T((3, 4))], lambda: nn.Softplus(2.0, 10.0)),
    ("prelu", {}, [T((3, 4))], lambda: nn.PReLU()),
    ("prelu", {"num_parameters": 3}, [T((3, 4, 5))], lambda: nn.PReLU(3)),
    ("prelu", {"num_parameters": 6, "init": 0.1}, [T((6,))], lambda: nn.PReLU(6, 0.1)),
    ("identity", {}, [T((3, 4))], lambda: nn.Identity()),
    ("softmax", {}, [T((3, 4))], lambda: nn.Softmax(-1)),
    ("log_softmax", {"axis": 0}, [T((3, 4))], lambda: nn.LogSoftmax(1)),
    ("maxout", {"pieces": 3}, [T((12,))], fn(maxout(3, 0))),
    ("maxout", {"pieces": 2, "axis": -1}, [T((5, 8))], fn(maxout(2, -1))),
    ("embedding", {"num_embeddings": 10, "dim": 4}, [T((5,), L)], lambda: nn.Embedding(10, 4)),
    ("embedding", {"num_embeddings": 10, "dim": 4}, [T((2, 3), L)], lambda: nn.Embedding(10, 4)),
    ("positional_encoding", {}, [T((7, 6))], fn(sinusoid)),
    ("multi_head_attention", {"num_heads": 2}, [T((5, 8))], lambda: Mha(8, 2)),
    ("multi_head_attention", {"num_heads": 4, "causal": True}, [T((5, 8))], lambda: Mha(8, 4, causal=True)),
    ("multi_head_attention", {"num_heads": 2}, [T((3, 8)), T((6, 8))], lambda: Mha(8, 2)),
    (
        "multi_head_attention",
        {"num_heads": 1, "bias": False},
        [T((3, 4)), T((6, 4))],
        lambda: Mha(4, 1, bias=False),
    ),
    (
        "multi_head_attention",
        {"num_heads": 2, "kdim": 5},
        [T((3, 8)), T((6, 5)), T((6, 3))],
        lambda: Mha(8, 2, kdim=5, vdim=3),
    ),
    ("cls_token", {}, [T((5, 8))], lambda: Prepend(8)),
    ("parameter", {}, [T((6, 8))], lambda: AddParam((6, 8))),
    ("mse", {}, [T((3, 4)), T((3, 4))], lambda: nn.MSELoss()),
    ("l1", {"reduction": "sum"}, [T((5,)), T((5,))], lambda: nn.L1Loss(reduction="sum")),
    ("binary_cross_entropy", {}, [T((5,)), T((5,))], lambda: nn.BCEWithLogitsLoss()),
    ("cross_entropy", {}, [T((10,)), T((), L)], lambda: nn.CrossEntropyLoss()),
    (
        "cross_entropy",
        {"label_smoothing": 0.1},
        [T((6, 10)), T((6,), L)],
        fn(lambda x, y: F.cross_entropy(x.movedim(-1, 1), y, label_smoothing=0.1)),
    ),
    (
        "cross_entropy",
        {"axis": 1, "class_weights": [1.0, 2.0, 0.5], "ignore_index": 1},
        [T((3, 4, 5)), T((4, 5), L)],
        lambda: nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]), ignore_index=1),
    ),
    ("hinge", {"margin": 0.5}, [T((10,)), T((), L)], lambda: nn.MultiMarginLoss(margin=0.5)),
    ("smooth_l1", {"beta": 0.5}, [T((3, 4)), T((3, 4))], lambda: nn.SmoothL1Loss(beta=0.5)),
    ("nll_loss", {}, [T((10,)), T((), L)], lambda: nn.NLLLoss()),
    (
        "nll_loss",
        {"axis": 1, "reduction": "sum"},
        [T((6, 7)), T((7,), L)],
        lambda: nn.NLLLoss(reduction="sum"),
    ),
    (
        "conv1d",
        {"out_channels": 8, "kernel": 5, "padding": 2},
        [T((4, 30))],
        lambda: nn.Conv1d(4, 8, 5, padding=2),
    ),
    (
        "conv1d",
        {"out_channels": 6, "kernel": 3, "stride": 2, "dilation": 2, "groups": 3, "bias": False},
        [T((3, 17))],
        lambda: nn.Conv1d(3, 6, 3, 2, dilation=2, groups=3, bias=False),
    ),
    (
        "conv1d",  # [left, right]
        {"out_channels": 4, "kernel": 4, "padding": [2, 1]},
        [T((2, 9))],
        lambda: nn.Sequential(nn.ConstantPad1d((2, 1), 0.0), nn.Conv1d(2, 4, 4)),
    ),
    ("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1}, [T((3, 11))], lambda: nn.MaxPool1d(3, 2, 1)),
    ("avgpool1d", {"kernel": 2}, [T((3, 11))], lambda: nn.AvgPool1d(2)),
    ("global_maxpool", {}, [T((5, 4, 3))], lambda: nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())),
    (
        "rnn",
        {"hidden_size": 4, "nonlinearity": "relu"},
        [T((5, 3))],
        lambda: Seq(nn.RNN(3, 4, nonlinearity="relu")),
    ),
    (
        "lstm",
        {"hidden_size": 4, "num_layers": 2, "bidirectional": True, "output": "last"},
        [T((5, 3))],
        lambda: Seq(nn.LSTM(3, 4, 2, bidirectional=True), last=True),
    ),
    ("gru", {"hidden_size": 4, "bias": False}, [T((5, 3))], lambda: Seq(nn.GRU(3, 4, bias=False))),
    (
        "conv_transpose2d",
        {"out_channels": 6, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
        [T((4, 5, 7))],
        lambda: nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2),
    ),
    (
        "conv_transpose2d",
        {"out_channels": 3, "kernel": [2, 3], "dilation": [1, 2], "bias": False},
        [T((2, 4, 4))],
        lambda: nn.ConvTranspose2d(2, 3, (2, 3), dilation=(1, 2), bias=False),
    ),
    ("upsample", {"scale_factor": 2}, [T((3, 4, 5))], lambda: nn.Upsample(scale_factor=2)),
    (
        "upsample",
        {"mode": "bilinear", "size": [7, 3], "align_corners": True},
        [T((3, 4, 5))],
        lambda: nn.Upsample(size=(7, 3), mode="bilinear", align_corners=True),
    ),
    ("upsample", {"scale_factor": [1.5, 0.5]}, [T((3, 4, 5))], lambda: nn.Upsample(scale_factor=(1.5, 0.5))),
    (
        "maxpool2d",
        {"kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True},
        [T((2, 10, 9))],
        lambda: nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True),
    ),
    (
        "maxpool2d",  # [top, bottom, left, right]; ConstantPad2d takes (left, right, top, bottom)
        {"kernel": 2, "padding": [1, 0, 0, 1]},
        [T((2, 5, 6))],
        lambda: nn.Sequential(nn.ConstantPad2d((0, 1, 1, 0), -float("inf")), nn.MaxPool2d(2)),
    ),
    (
        "avgpool2d",  # the last window would start in the bottom padding: dropped
        {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
        [T((2, 5, 6))],
        lambda: nn.AvgPool2d(2, 2, 1, ceil_mode=True, count_include_pad=False),
    ),
    (
        "maxpool1d",
        {"kernel": 3, "stride": 2, "dilation": 2, "ceil_mode": True},
        [T((3, 12))],
        lambda: nn.MaxPool1d(3, 2, dilation=2, ceil_mode=True),
    ),
    (
        "avgpool1d",
        {"kernel": 2, "padding": 1, "ceil_mode": True},
        [T((3, 9))],
        lambda: nn.AvgPool1d(2, 2, 1, True),
    ),
    (
        "avgpool1d",
        {"kernel": 3, "stride": 1, "padding": [1, 0]},
        [T((3, 9))],
        lambda: nn.Sequential(nn.ConstantPad1d((1, 0), 0.0), nn.AvgPool1d(3, 1)),
    ),
]


def case_id(c) -> str:
    return f"{c[0]}-" + "-".join(f"{k}={v}" for k, v in c[1].items()) + "-" + "-".join(str(t) for t in c[2])


def run(op_name: str, attrs: dict, ins: list[TensorType]):
    op = OPS[op_name]
    a = op.fill_defaults(attrs)
    out = op.shape(a, ins)
    return op, a, out


def torch_inputs(op_name: str, attrs: dict, ins: list[TensorType]) -> list[torch.Tensor]:
    torch.manual_seed(0)
    xs = []
    for t in ins:
        if t.dtype == "int64":
            high = attrs.get("num_embeddings") or ins[0].shape[0 if attrs.get("axis") == 1 else -1]
            xs.append(torch.randint(0, high, (2, *t.shape)))
        else:
            xs.append(torch.randn(2, *t.shape))
    if op_name == "binary_cross_entropy":
        xs[1] = xs[1].sigmoid()
    return xs


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_shape_and_params_match_torch(case) -> None:
    name, attrs, ins, make = case
    op, a, out = run(name, attrs, ins)
    m = make()
    with torch.no_grad():
        y = m(*torch_inputs(name, attrs, ins))
    assert out.shape == (tuple(y.shape[1:]) if out.batched else tuple(y.shape))
    assert out.batched == (not op.is_loss)
    ps = op.params(a, ins)
    assert sum(p.numel for p in ps if p.trainable) == sum(p.numel() for p in m.parameters())
    assert len({p.name for p in ps}) == len(ps)
    fwd, bwd = op.flops(a, ins, out)
    assert isinstance(fwd, int) and isinstance(bwd, int) and fwd >= 0 and bwd >= 0


def test_every_op_has_a_torch_case() -> None:
    assert {c[0] for c in CASES} == set(OPS)


# -- shape errors ----------------------------------------------------------------------------------------

ERRORS = [
    ("linear", {"out_features": 3}, [T(())], r"at least one per-sample axis"),
    (
        "conv2d",
        {"out_channels": 2, "kernel": 5},
        [T((1, 3, 3))],
        re.escape("conv2d kernel 5x5 is larger than the padded input 3x3 (input 0 is [N, 1, 3, 3])"),
    ),
    (
        "conv2d",
        {"out_channels": 2, "kernel": 3, "dilation": 2},
        [T((1, 4, 9))],
        r"dilated 5x5.*padded input 4x9",
    ),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 3, "groups": 2},
        [T((3, 8, 8))],
        r"groups=2 must divide.*channels 3",
    ),
    ("conv2d", {"out_channels": 3, "kernel": 3, "groups": 2}, [T((4, 8, 8))], r"out_channels 3"),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 3, "stride": 2, "padding": "same"},
        [T((3, 8, 8))],
        r'"same" needs stride 1',
    ),
    (
        "conv2d",
        {"out_channels": 4, "kernel": 3},
        [T((3, 8))],
        re.escape("input 0 of shape [N, C, H, W], but input 0 is [N, 3, 8]"),
    ),
    (
        "maxpool2d",
        {"kernel": 2, "padding": 2},
        [T((3, 8, 8))],
        r"padding \[2, 2\] must be at most half the kernel",
    ),
    ("maxpool2d", {"kernel": 4}, [T((3, 3, 8))], r"kernel 4x4 is larger than the padded input 3x8"),
    ("avgpool2d", {"kernel": 2}, [T((8, 8))], r"\[N, C, H, W\]"),
    ("global_avgpool", {}, [T((8,))], r"\[N, C, \.\.\.spatial\], but input 0 is \[N, 8\]"),
    ("flatten", {"start_axis": 3}, [T((4, 3))], r"start_axis 3 is out of range"),
    ("reshape", {"shape": [5, -1]}, [T((4, 3))], r"cannot view input 0 \[N, 4, 3\]"),
    (
        "reshape",
        {"shape": [5, 2]},
        [T((4, 3))],
        r"needs 10 values per sample, but input 0 is \[N, 4, 3\] with 12",
    ),
    ("reshape", {"shape": [-1, -1]}, [T((4, 3))], r"at most one -1"),
    ("transpose", {"perm": [0, 0]}, [T((4, 3))], r"not a permutation"),
    ("transpose", {"perm": [1, 0]}, [T((4, 3, 2))], r"has 2 axes, but input 0 \[N, 4, 3, 2\] has 3"),
    ("concat", {}, [T((4, 3)), T((4, 2))], r"input 0 is \[N, 4, 3\] and input 1 is \[N, 4, 2\]"),
    (
        "add",
        {},
        [T((4, 3)), T((4, 3)), T((3, 4))],
        r"cannot broadcast input 2 \[N, 3, 4\] against \[N, 4, 3\] \(inputs 0 to 1\): axis -2 is 3 against 4",
    ),
    (
        "mul",
        {},
        [T((4,)), T((5,))],
        r"cannot broadcast input 1 \[N, 5\] against input 0 \[N, 4\]: axis -1 is 5 against 4",
    ),
    (
        "sub",
        {},
        [T((3, 4)), T((2, 4, 4))],
        r"input 1 \[N, 2, 4, 4\] against input 0 \[N, 3, 4\]: axis -2 is 4 against 3",
    ),
    ("sub", {}, [T((3, 4)), T((3,))], r"input 1 \[N, 3\] against input 0 \[N, 3, 4\]: axis -1 is 3"),
    ("div", {}, [T((6, 2)), T((3, 2))], r"axis -2 is 3 against 6"),
    ("div", {}, [T((3,), L), T((3,))], r"input 0 must be float32"),
    (
        "matmul",
        {},
        [T((4, 3)), T((4, 5))],
        r"inner dimensions differ: input 0 \[N, 4, 3\] gives K=3 \(transpose_a=false\) and "
        r"input 1 \[N, 4, 5\] gives K=4",
    ),
    ("matmul", {"transpose_b": True}, [T((4, 3)), T((3, 5))], r"gives K=5 \(transpose_b=true\)"),
    (
        "matmul",
        {},
        [T((2, 4, 3)), T((5, 3, 4))],
        r"leading axes \(before the last two\) of input 0 \[N, 2, 4, 3\] and input 1 \[N, 5, 3, 4\]: "
        r"\[2\] against \[5\]",
    ),
    ("matmul", {}, [T((4,)), T((4, 5))], r"rank 2 or more.*input 0 is \[N, 4\]"),
    (
        "constant",
        {"value": [[1.0, 2.0], [3.0]]},
        [],
        r"value is ragged: value\[0\] has shape \[2\] but value\[1\] has shape \[1\]",
    ),
    ("constant", {"value": [1.0, 2.0], "shape": [3]}, [], r"value has shape \[2\] but shape is \[3\]"),
    ("constant", {"value": 1.5, "dtype": "int64"}, [], r"int64 needs integer values"),
    ("constant", {"value": [1.0, "a"]}, [], r"numbers only"),
    ("mean", {"axes": [0, -2]}, [T((4, 3))], r"name an axis twice"),
    ("mean", {"axes": [2]}, [T((4, 3))], r"axis 2 is out of range"),
    ("select", {"axis": 0, "index": 4}, [T((4, 3))], r"index 4 is out of range for axis 0 of size 4"),
    ("dropout", {}, [T((4,), L)], r"must be float32"),
    ("batchnorm1d", {}, [T((4, 3, 2))], r"\[N, C\] or \[N, C, L\], but input 0 is \[N, 4, 3, 2\]"),
    ("batchnorm2d", {}, [T((4, 3))], r"\[N, C, H, W\]"),
    ("layernorm", {"normalized_axes": 3}, [T((4, 3))], r"normalized_axes=3 exceeds"),
    (
        "groupnorm",
        {"num_groups": 4},
        [T((6, 5))],
        re.escape("num_groups=4 must divide the channels C=6 of input 0 [N, 6, 5]"),
    ),
    (
        "groupnorm",
        {"num_groups": 1},
        [T(())],
        re.escape("groupnorm needs input 0 of shape [N, C, *], but input 0 is [N]"),
    ),
    ("instancenorm", {}, [T((6,))], re.escape("[N, C, L] or [N, C, H, W], but input 0 is [N, 6]")),
    ("instancenorm", {}, [T((6, 1, 1))], r"more than one value per channel, but input 0 is \[N, 6, 1, 1\]"),
    ("relu", {}, [T((3,), L)], r"float32"),
    ("leaky_relu", {}, [T((3,), L)], r"float32"),
    ("elu", {}, [T((3,), L)], r"float32"),
    ("gelu", {}, [T((3,), L)], r"float32"),
    ("sigmoid", {}, [T((3,), L)], r"float32"),
    ("tanh", {}, [T((3,), L)], r"float32"),
    ("relu6", {}, [T((3,), L)], r"float32"),
    ("hardtanh", {"min_val": 2.0, "max_val": 1.0}, [T((3,))], r"min_val 2.0 is greater than max_val 1.0"),
    ("hardsigmoid", {}, [T((3,), L)], r"float32"),
    ("hardswish", {}, [T((3,), L)], r"float32"),
    ("silu", {}, [T((3,), L)], r"float32"),
    ("selu", {}, [T((3,), L)], r"float32"),
    ("softplus", {}, [T((3,), L)], r"float32"),
    (
        "prelu",
        {"num_parameters": 4},
        [T((3, 8))],
        re.escape("prelu num_parameters=4 must be 1 or the channel count 3 (per-sample axis 0, dim 1 of "),
    ),
    ("prelu", {"num_parameters": 2}, [T(())], r"must be 1 or the channel count 1"),
    ("softmax", {"axis": 1}, [T((3,))], r"softmax axis 1 is out of range"),
    ("log_softmax", {"axis": -3}, [T((3, 2))], r"log_softmax axis -3 is out of range"),
    ("maxout", {"pieces": 3}, [T((8,))], r"pieces=3 must divide axis 0 of size 8"),
    ("embedding", {"num_embeddings": 3, "dim": 2}, [T((4,))], r"token ids\) of dtype int64, got float32"),
    ("positional_encoding", {}, [T((4, 5))], r"even model size"),
    ("positional_encoding", {"max_len": 3}, [T((4, 6))], r"length 4 exceeds max_len 3"),
    ("multi_head_attention", {"num_heads": 3}, [T((4, 8))], r"num_heads=3 must divide the model size E=8"),
    (
        "multi_head_attention",
        {"num_heads": 2, "masks": ["attn"]},
        [T((4, 8)), T((5, 6)), T((4, 6))],
        r"attn mask \(input 2\) must be \[N, 4, 5\] or \[N, 2, 4, 5\].*input 2 is \[N, 4, 6\]",
    ),
    ("cls_token", {}, [T((8,))], r"\[N, T, D\], but input 0 is \[N, 8\]"),
    ("parameter", {}, [T((8,), L)], r"float32"),
    ("mse", {}, [T((3,)), T((4,))], r"input 0 is \[N, 3\] and input 1 is \[N, 4\]"),
    ("l1", {}, [T((3,)), T((3,), L)], r"input 1 must be float32"),
    ("binary_cross_entropy", {}, [T((3, 2)), T((2, 3))], r"one shape"),
    (
        "cross_entropy",
        {},
        [T((6, 10)), T((10,), L)],
        r"without their last \(class\) axis.*\[N, 6, 10\].*\[N, 10\]",
    ),
    ("cross_entropy", {}, [T((10,)), T(())], r"int64"),
    ("hinge", {}, [T((4, 10)), T((4,), L)], r"\[N, C\]"),
    ("smooth_l1", {}, [T((3,)), T((4,))], r"input 0 is \[N, 3\] and input 1 is \[N, 4\]"),
    ("nll_loss", {"axis": 1}, [T((6, 10)), T((6,), L)], r"axis 1 needs.*\[N, 6, 10\].*\[N, 6\]"),
    ("nll_loss", {"class_weights": [1, 2]}, [T((3,)), T((), L)], r"class_weights has 2 numbers.*3 classes"),
    (
        "cross_entropy",
        {"axis": 1, "class_weights": [1]},
        [T((3, 4)), T((4,), L)],
        r"has 1 numbers.*3 classes on axis 1",
    ),
    ("cross_entropy", {"axis": 1}, [T((3, 4)), T((4,))], r"int64"),
    (
        "conv1d",
        {"out_channels": 4, "kernel": 3, "groups": 2},
        [T((3, 8))],
        r"groups=2 must divide.*channels 3",
    ),
    ("conv1d", {"out_channels": 4, "kernel": 5}, [T((3, 4))], r"kernel 5 is longer than the padded input 4"),
    ("maxpool1d", {"kernel": 3, "padding": 2}, [T((3, 8))], r"padding 2 must be at most half the kernel 3"),
    ("avgpool1d", {"kernel": 4}, [T((3, 3))], r"kernel 4 is longer than the padded input 3"),
    ("global_maxpool", {}, [T((8,))], r"\[N, C, \.\.\.spatial\]"),
    ("lstm", {"hidden_size": 4}, [T((5,))], r"lstm needs input 0 of shape \[N, T, F\]"),
    ("gru", {"hidden_size": 4}, [T((5, 3)), T((2, 4))], r"input 1 \(h0\) of shape \[N, 1, 4\]"),
    (
        "rnn",
        {"hidden_size": 2, "num_layers": 2},
        [T((5, 3)), T((1, 2))],
        r"\[N, 2, 2\].*input 1 is \[N, 1, 2\]",
    ),
    (
        "conv_transpose2d",
        {"out_channels": 4, "kernel": 3, "stride": 2, "output_padding": 2},
        [T((3, 5, 5))],
        r"output_padding 2 \(vertical\) must be smaller than the stride 2 or the dilation 1",
    ),
    ("upsample", {"scale_factor": 2, "size": 4}, [T((3, 5, 5))], r"exactly one of scale_factor and size"),
    (
        "maxpool2d",
        {"kernel": 3, "padding": [0, 2, 0, 0]},
        [T((3, 8, 8))],
        re.escape("padding [0, 2, 0, 0] (top, bottom, left, right) must be at most half the kernel [3, 3]"),
    ),
    (
        "maxpool2d",  # taps -1 and 1 of an input of height 1
        {"kernel": 2, "padding": [1, 0], "dilation": 2},
        [T((3, 1, 8))],
        r"window 0 along the height reads only padding: kernel 2 dilated by 2 with padding 1",
    ),
    (
        "avgpool2d",
        {"kernel": 5, "stride": 2, "ceil_mode": True},
        [T((3, 3, 8))],
        re.escape("kernel 5x5 is larger than the padded input 3x8 by the stride [2, 2] or more (ceil_mode)"),
    ),
    ("maxpool1d", {"kernel": 2, "padding": 1, "dilation": 3}, [T((3, 2))], r"window 0 along the length"),
    (
        "avgpool1d",
        {"kernel": 2, "padding": [0, 2]},
        [T((3, 8))],
        r"padding \[0, 2\] must be at most half the kernel 2",
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=[case_id(c) for c in ERRORS])
def test_shape_errors(case) -> None:
    name, attrs, ins, pattern = case
    with pytest.raises(ShapeError, match=pattern):
        run(name, attrs, ins)


def test_every_op_has_an_error_case() -> None:
    # identity accepts any tensor, zeros any shape its schema does
    assert set(OPS) - {c[0] for c in ERRORS} == {"identity", "zeros"}


def test_shape_error_names_the_input() -> None:
    with pytest.raises(ShapeError) as e:
        run("concat", {}, [T((4, 3)), T((4, 3)), T((5, 2))])
    assert e.value.input_index == 2


# -- contract hygiene ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
def test_contract_hygiene(name: str) -> None:
    op = OPS[name]
    module = inspect.getmodule(type(op))
    assert module.__doc__ and module.__doc__.startswith(f"{name}:"), (
        "module docstring starts with 'op: formula'"
    )
    assert Path(module.__file__).stem == name == op.name
    assert module.OP is op
    for attr, frag in op.attributes.items():
        assert ("default" in frag) != (attr in op.required), (
            f"{attr}: exactly the required attributes lack a default"
        )
        assert frag.get("description"), f"{attr} has no description"
    assert set(op.required) <= set(op.attributes)
    assert set(op.key_attributes) <= set(op.attributes)
    assert set(op.int_inputs) <= set(range(op.arity_range()[1] or 99))
    json.dumps(op.attributes)  # the language schema is generated from these


@pytest.mark.parametrize("name", sorted(OPS))
def test_defaults_and_example_validate(name: str) -> None:
    import jsonschema

    op = OPS[name]
    for _attr, frag in op.attributes.items():
        if "default" in frag:
            jsonschema.validate(frag["default"], frag)
    assert op.example is not None, "docs/ops.md shows every op on its example"
    attrs, ins = op.example
    for k, v in attrs.items():
        jsonschema.validate(v, op.attributes[k])
    a = op.fill_defaults(attrs)
    out = op.shape(a, list(ins))
    lo, hi = op.arity_range()
    assert lo <= len(ins) <= (hi or len(ins))
    for s in op.saved(a, list(ins), out):
        assert s.dtype in DTYPE_BYTES
    assert op.workspace(a, list(ins), out, 8) >= 0
    assert all(i not in op.int_inputs or ins[i].dtype == "int64" for i in range(len(ins)))


# -- FLOPs by hand ---------------------------------------------------------------------------------------


def flops(name, attrs, ins):
    op, a, out = run(name, attrs, ins)
    return op.flops(a, ins, out)


def test_linear_flops() -> None:
    # [N, 3, 5] → [N, 3, 7]: 3 rows × 5 × 7 multiply-adds
    assert flops("linear", {"out_features": 7}, [T((3, 5))]) == (2 * 105 + 21, 4 * 105 + 21)
    assert flops("linear", {"out_features": 7, "bias": False}, [T((5,))]) == (70, 140)


def test_arithmetic_and_matmul_flops() -> None:
    # [4, 3] · [3, 5] per sample: 60 multiply-adds forward; backward dA and dB, 60 each
    assert flops("matmul", {}, [T((4, 3)), T((3, 5))]) == (120, 240)
    # [2, 4, 3] · [3, 5]: two products; b's gradient adds the second product's 3·5 into the first
    assert flops("matmul", {}, [T((2, 4, 3)), T((3, 5))]) == (240, 480 + 15)
    assert flops("matmul", {"transpose_a": True}, [T((3, 4)), T((2, 3, 5))]) == (240, 480 + 12)
    # add of [2, 3, 4] and a [3, 1] bias: 24 additions; the bias gradient sums 24 into 3 (21 more)
    assert flops("add", {}, [T((2, 3, 4)), T((3, 1))]) == (24, 21)
    assert flops("add", {}, [T((6,)), T((6,)), T((6,))]) == (12, 0)
    assert flops("sub", {}, [T((6,)), T((1,))]) == (6, 6 + 5)
    assert flops("mul", {}, [T((6,)), T((6,))]) == (6, 12)
    assert flops("div", {}, [T((2, 3)), T((2, 1))]) == (6, 24 + 4)  # 6 summed into 2
    assert flops("constant", {"value": 1.0, "shape": [5]}, []) == (0, 0)


def test_conv2d_flops_groups_dilation() -> None:
    # C=6, groups=3 → 2 input channels per group; kernel 3x3 dilated 2 spans 5; 12x11 → 8x7 at stride 1;
    # out 9 channels: each output reads 2·3·3 = 18 inputs.
    macs = 8 * 7 * 9 * 18
    attrs = {"out_channels": 9, "kernel": 3, "dilation": 2, "groups": 3}
    assert flops("conv2d", attrs, [T((6, 12, 11))]) == (2 * macs + 8 * 7 * 9, 4 * macs + 8 * 7 * 9)
    assert flops("conv2d", {**attrs, "bias": False}, [T((6, 12, 11))]) == (2 * macs, 4 * macs)


def test_conv2d_params_and_workspace() -> None:
    op, a, out = run(
        "conv2d", {"out_channels": 8, "kernel": [3, 2], "groups": 2, "bias": False}, [T((4, 6, 6))]
    )
    (w,) = op.params(a, [T((4, 6, 6))])
    assert (w.shape, w.fan_in, w.fan_out, w.init) == ((8, 2, 3, 2), 12, 48, "kaiming_uniform")
    assert out.shape == (8, 4, 5)
    # stride 1: the wide layout, output (i, j) at column i·Wp + j; a plane [C, Hp, Wp] (and its
    # gradient) per thread. Strided: Ho·Wo columns, no plane.
    assert op.columns(a, [T((4, 6, 6))]) == (3 * 6 + 5, 4 * 6 * 6)
    strided = {**a, "stride": 2}
    assert op.columns(strided, [T((4, 6, 6))]) == (2 * 3, 0)
    # per thread (THREADS of them, at most one per sample): the im2col columns and the stage of a
    # chunk of S samples (C·kh·kw + O rows), two planes and a dWᵀ partial
    per_sample, planes, partial = (4 * 3 * 2 + 8) * 23, 2 * 4 * 6 * 6, 2 * 3 * 2 * 8
    chunk = op.chunk(a, [T((4, 6, 6))], 64, THREADS)
    assert chunk == min(-(-64 // THREADS), CHUNK_BYTES // (per_sample * 4))
    assert op.workspace(a, [T((4, 6, 6))], out, 64) == THREADS * (chunk * per_sample + planes + partial) * 4
    assert op.workspace(a, [T((4, 6, 6))], out, 1) == (per_sample + planes + partial) * 4
    assert op.chunk(a, [T((4, 600, 600))], 64, THREADS) == 1  # large samples: one per GEMM
    assert op.saves_inputs(a) == (0,)
    b = OPS["conv2d"].params(OPS["conv2d"].fill_defaults({"out_channels": 8, "kernel": 3}), [T((4, 6, 6))])[1]
    assert (b.shape, b.init) == ((8,), "fan_in_uniform")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("tq,tk,cross", [(5, 5, False), (3, 7, True)])
def test_attention_flops(tq: int, tk: int, cross: bool, bias: bool) -> None:
    d, h = 16, 4
    ins = [T((tq, d)), T((tk, d))] if cross else [T((tq, d))]
    proj = 2 * tq * d * d + 2 * tk * d * d + 2 * tk * d * d + 2 * tq * d * d  # q, k, v, out projections
    attend = 2 * (h * tq * tk * (d // h)) * 2  # Q·Kᵀ and A·V, per head
    biases = (tq + tk + tk + tq) * d if bias else 0
    scores = h * tq * tk
    fwd = proj + attend + biases + scores * (1 + 5)  # scale + softmax
    recompute = attend // 2 + scores * 3  # backward recomputes QKᵀ, then scale, exp and 1/sum
    bwd = 2 * (proj + attend) + biases + scores * (4 + 1) + recompute
    assert flops("multi_head_attention", {"num_heads": h, "bias": bias}, ins) == (fwd, bwd)


def test_attention_params_and_saved() -> None:
    op, a, out = run("multi_head_attention", {"num_heads": 2}, [T((3, 8)), T((6, 8))])
    ins = [T((3, 8)), T((6, 8))]
    ps = {p.name: p for p in op.params(a, ins)}
    assert sorted(ps) == ["b_k", "b_o", "b_q", "b_v", "w_k", "w_o", "w_q", "w_v"]
    assert ps["w_q"].shape == (8, 8) and ps["w_q"].init == "xavier_uniform" and ps["b_o"].init == "zeros"
    saved = {s.name: s.shape for s in op.saved(a, ins, out)}
    assert saved == {"softmax": (2, 3, 2), "q": (3, 8), "k": (6, 8), "v": (6, 8), "context": (3, 8)}
    assert op.saves_inputs(a) == (0, 1, 2, 3, 4)  # every input there is (masks: backward adds them again)
    # two [Tq, Tk] score blocks per CPU thread, one thread per sample at most
    assert op.workspace(a, ins, out, 1) == 2 * 3 * 6 * 4
    assert op.workspace(a, ins, out, 64) == min(64, THREADS) * 2 * 3 * 6 * 4


# -- parameters and saved tensors ------------------------------------------------------------------------


def test_batchnorm_params_match_torch_state() -> None:
    op, a, _ = run("batchnorm2d", {}, [T((6, 5, 4))])
    m = nn.BatchNorm2d(6)
    ps = op.params(a, [T((6, 5, 4))])
    state = {k: v for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    names = {"weight": "w", "bias": "b", "running_mean": "running_mean", "running_var": "running_var"}
    assert {names[k]: tuple(v.shape) for k, v in state.items()} == {p.name: p.shape for p in ps}
    assert {p.name: (p.init, p.trainable) for p in ps} == {
        "w": ("ones", True),
        "b": ("zeros", True),
        "running_mean": ("zeros", False),
        "running_var": ("ones", False),
    }
    saved = op.saved(a, [T((6, 5, 4))], T((6, 5, 4)))
    assert [(s.name, s.shape, s.batched) for s in saved] == [("mean", (6,), False), ("invstd", (6,), False)]


def test_group_norms_params_and_saved_match_torch() -> None:
    names = {"weight": "w", "bias": "b", "running_mean": "running_mean", "running_var": "running_var"}
    for name, attrs, m in [
        ("groupnorm", {"num_groups": 3}, nn.GroupNorm(3, 6)),
        (
            "instancenorm",
            {"affine": True, "track_running_stats": True},
            nn.InstanceNorm2d(6, True, 0.1, True, True),
        ),
        ("instancenorm", {"track_running_stats": True}, nn.InstanceNorm2d(6, track_running_stats=True)),
    ]:
        op, a, out = run(name, attrs, [T((6, 5, 4))])
        ps = op.params(a, [T((6, 5, 4))])
        state = {k: v for k, v in m.state_dict().items() if k != "num_batches_tracked"}
        assert {names[k]: tuple(v.shape) for k, v in state.items()} == {p.name: p.shape for p in ps}
        assert {p.name: op.param_role(p.name, p.trainable) for p in ps} == {
            k: ("stat" if k.startswith("running") else "norm") for k in (p.name for p in ps)
        }
        assert all(p.trainable == (not p.name.startswith("running")) for p in ps)
        g = a.get("num_groups", 6)
        saved = op.saved(a, [T((6, 5, 4))], out)
        assert [(s.name, s.shape, s.batched) for s in saved] == [("mean", (g,), True), ("invstd", (g,), True)]
        assert op.saves_inputs(a) == (0,) and not op.saves_output(a)
        n, affine = 6 * 5 * 4, a["affine"]
        assert op.flops(a, [T((6, 5, 4))], out) == (7 * n + 2 * n * affine, 10 * n + 3 * n * affine)
    assert (
        run("instancenorm", {}, [T((6, 5))])[0].params(OPS["instancenorm"].fill_defaults({}), [T((6, 5))])
        == []
    )
    assert "one value" in OPS["groupnorm"].advice({"num_groups": 6}, [T((6,))])
    assert OPS["groupnorm"].advice({"num_groups": 3}, [T((6,))]) is None


def test_layernorm_saved_per_row() -> None:
    op, a, out = run("layernorm", {"normalized_axes": 2}, [T((3, 5, 8))])
    assert [(s.name, s.shape, s.batched) for s in op.saved(a, [T((3, 5, 8))], out)] == [
        ("mean", (3,), True),
        ("invstd", (3,), True),
    ]
    assert [p.shape for p in op.params(a, [T((3, 5, 8))])] == [(5, 8), (5, 8)]


@pytest.mark.parametrize(
    "name,attrs,ins,saved,inputs,output",
    [
        ("maxpool2d", {"kernel": 2}, [T((3, 8, 8))], [("argmax", (3, 4, 4), "int64")], (), False),
        ("avgpool2d", {"kernel": 2}, [T((3, 8, 8))], [], (), False),
        ("maxout", {"pieces": 2}, [T((8, 3))], [("argmax", (4, 3), "int64")], (), False),
        ("dropout", {}, [T((8,))], [("mask", (8,), "float32")], (), False),
        ("sigmoid", {}, [T((8,))], [], (), True),
        ("tanh", {}, [T((8,))], [], (), True),
        ("softmax", {}, [T((8,))], [], (), True),
        ("gelu", {}, [T((8,))], [], (0,), False),
        ("relu6", {}, [T((8,))], [], (), True),
        ("hardtanh", {}, [T((8,))], [], (), True),
        ("hardsigmoid", {}, [T((8,))], [], (0,), False),
        ("hardswish", {}, [T((8,))], [], (0,), False),
        ("silu", {}, [T((8,))], [], (0,), False),
        ("selu", {}, [T((8,))], [], (0,), False),
        ("softplus", {}, [T((8,))], [], (0,), False),
        ("prelu", {}, [T((8,))], [], (0,), False),
        ("mul", {}, [T((8,)), T((8,))], [], (0, 1), False),
        ("add", {}, [T((8,)), T((8,))], [], (), False),
        ("flatten", {}, [T((8, 2))], [], (), False),
        ("transpose", {"perm": [1, 0]}, [T((8, 2))], [], (), False),
        ("cross_entropy", {}, [T((8,)), T((), L)], [], (0, 1), False),
        ("nll_loss", {"axis": 1}, [T((8, 3)), T((3,), L)], [], (1,), False),
        ("smooth_l1", {}, [T((8,)), T((8,))], [], (0, 1), False),
        ("embedding", {"num_embeddings": 4, "dim": 2}, [T((8,), L)], [], (0,), False),
    ],
)
def test_saved_for_backward(name, attrs, ins, saved, inputs, output) -> None:
    op, a, out = run(name, attrs, ins)
    assert [(s.name, s.shape, s.dtype) for s in op.saved(a, ins, out)] == saved
    assert op.saves_inputs(a) == inputs
    assert op.saves_output(a) is output


def test_activation_flops() -> None:
    ins = [T((4, 5))]
    per_element = {"relu6": (2, 3), "hardtanh": (2, 3), "hardsigmoid": (4, 3), "hardswish": (5, 4),
                   "silu": (5, 9), "selu": (4, 4), "softplus": (6, 6), "prelu": (1, 4)}  # fmt: skip
    for name, per in per_element.items():
        assert flops(name, {}, ins) == (20 * per[0], 20 * per[1]), name
    assert flops("prelu", {"num_parameters": 4}, ins) == (20, 80)


def test_movement_ops_cost_nothing() -> None:
    for name, attrs, ins in [
        ("flatten", {}, [T((4, 3))]),
        ("reshape", {"shape": [12]}, [T((4, 3))]),
        ("transpose", {"perm": [1, 0]}, [T((4, 3))]),
        ("concat", {}, [T((4, 3)), T((4, 3))]),
        ("select", {"axis": 1, "index": 0}, [T((4, 3))]),
        ("identity", {}, [T((4, 3))]),
    ]:
        assert flops(name, attrs, ins) == (0, 0), name


def test_pool_stride_defaults_to_kernel() -> None:
    _op, a, out = run("maxpool2d", {"kernel": [2, 3]}, [T((1, 8, 9))])
    assert a["stride"] is None and out.shape == (1, 4, 3)
    assert flops("maxpool2d", {"kernel": [2, 3]}, [T((1, 8, 9))]) == (12 * 6, 12)


def test_loss_output_is_a_batchless_scalar() -> None:
    for name in ("mse", "l1", "binary_cross_entropy", "cross_entropy", "hinge", "smooth_l1", "nll_loss"):
        op = OPS[name]
        attrs, ins = op.example
        out = op.shape(op.fill_defaults(attrs), list(ins))
        assert op.is_loss and out == TensorType((), batched=False) and out.nbytes(64) == 4


def test_param_counts_of_a_lenet() -> None:
    # LeNet-5 as in PyTorch's tutorials: 61,706 parameters
    layers = [
        ("conv2d", {"out_channels": 6, "kernel": 5, "padding": 2}),
        ("maxpool2d", {"kernel": 2}),
        ("conv2d", {"out_channels": 16, "kernel": 5}),
        ("maxpool2d", {"kernel": 2}),
        ("flatten", {}),
        ("linear", {"out_features": 120}),
        ("linear", {"out_features": 84}),
        ("linear", {"out_features": 10}),
    ]
    t, total = T((1, 28, 28)), 0
    for name, attrs in layers:
        op, a, out = run(name, attrs, [t])
        total += sum(p.numel for p in op.params(a, [t]))
        t = out
    assert t.shape == (10,) and total == 61706


def test_pool_flops_count_the_window_cells_read() -> None:
    # kernel 3, stride 2, padding 1 on 5x5: the three windows of an axis read 2, 3 and 2 cells
    # (taps -1..1, 1..3, 3..5), so 7·7 cells per channel; backward one add per output
    assert flops("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, [T((2, 5, 5))]) == (2 * 49, 2 * 9)
    # ceil_mode 2x2/2 on 5x5: the last window of each axis reads 1 cell: (2 + 2 + 1)² per channel
    assert flops("avgpool2d", {"kernel": 2, "ceil_mode": True}, [T((1, 5, 5))]) == (25, 25)
    # dilation 2, kernel 3 on 7 (1-d): taps 0, 2, 4 and 2, 4, 6 of the two windows at stride 2
    assert flops("maxpool1d", {"kernel": 3, "stride": 2, "dilation": 2}, [T((3, 7))]) == (3 * 6, 3 * 2)
    # padding [1, 0] and ceil_mode on 9 (stride 2): windows from -1, 1, 3, 5, 7 read 1, 2, 2, 2, 2
    assert flops("avgpool1d", {"kernel": 2, "padding": [1, 0], "ceil_mode": True}, [T((1, 9))]) == (9, 9)


def test_pool_cells_by_tap_equal_a_count_window_by_window_and_ignore_the_input_size() -> None:
    from netc.compiler.ops.maxpool2d import cells_read, pool_axis

    rng = np.random.default_rng(0)
    for _ in range(400):
        size, k, s, d = (int(v) for v in rng.integers(1, [12, 5, 4, 4]))
        p0, p1, ceil = (
            int(rng.integers(0, k // 2 + 1)),
            int(rng.integers(0, k // 2 + 1)),
            bool(rng.random() < 0.5),
        )
        n = pool_axis(size, k, s, d, p0, p1, ceil)
        if n < 1:
            continue
        each = [sum(0 <= i * s - p0 + u * d < size for u in range(k)) for i in range(n)]
        got = cells_read(size, k, s, d, p0, n)
        assert (got.n, got.total) == (n, sum(each)), (size, k, s, d, p0, n)
        assert got.empty == (each.index(0) if 0 in each else None), (size, k, s, d, p0, n)
    # a fuzzed million-cell axis (a conv padded by a million before the pool), counted per tap
    assert cells_read(2_000_028, 2, 2, 1, 0, 1_000_014) == (1_000_014, 2_000_028, None)
