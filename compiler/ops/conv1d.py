"""conv1d: 1-d cross-correlation, as torch.nn.Conv1d.

x: [N, C, L] → y: [N, out_channels, Lo];
y[o, i] = b[o] + Σ_{c∈group(o), u} w[o, c, u] · xpad[c, s·i + d·u]
with Lo = floor((L + pad_left + pad_right - d·(k-1) - 1) / s) + 1.

Parameters: w [out_channels, C/groups, k] (fan_in C/groups·k, fan_out out_channels·k, as
PyTorch), b [out_channels] when ``bias``.

padding: an int, [left, right], "valid" (= 0) or "same" (stride 1; total padding d·(k-1), the
odd one on the right as PyTorch does).

It is conv2d on the view [N, C, 1, L] with kernel [1, k] (``as_conv2d``: the weight's memory is
the same), so FLOPs (forward 2·M, backward 4·M for M = Lo·out_channels·(C/groups)·k
multiply-adds, plus Lo·out_channels each way for the bias) and the workspace are conv2d's, and
so are the kernels. Backward reads the input.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from .base import (
    INIT_ATTR,
    INT_NONNEG,
    INT_POS,
    Op,
    Param,
    ShapeError,
    TensorType,
    check_rank,
    float_input,
)
from .conv2d import OP as CONV2D
from .conv2d import pads4

PADDING = {
    "oneOf": [
        INT_NONNEG,
        {"type": "array", "items": INT_NONNEG, "minItems": 2, "maxItems": 2},
        {"enum": ["same", "valid"]},
    ],
    "default": 0,
    "description": 'zero padding: int, [left, right], "valid" or "same" (stride 1; the odd one goes right)',
}


def as_conv2d(attrs: dict[str, Any]) -> dict[str, Any]:
    """conv1d's attributes as those of the conv2d over [N, C, 1, L] that computes it."""
    p = attrs["padding"]
    pads = p if isinstance(p, str) else [0, 0, *(p if isinstance(p, list) else [p, p])]
    return {
        **attrs,
        "kernel": [1, attrs["kernel"]],
        "stride": [1, attrs["stride"]],
        "dilation": [1, attrs["dilation"]],
        "padding": pads,
    }


def plane(t: TensorType) -> TensorType:
    """A per-sample [C, L] as the [C, 1, L] plane of the 2-d view."""
    return TensorType((t.shape[0], 1, t.shape[1]), t.dtype)


class Conv1d(Op):
    name = "conv1d"
    family = "conv"
    epilogue_producer = True
    attributes: ClassVar[dict[str, Any]] = {
        "out_channels": {**INT_POS, "description": "number of output channels"},
        "kernel": {**INT_POS, "description": "kernel size"},
        "stride": {**INT_POS, "default": 1, "description": "step"},
        "padding": PADDING,
        "dilation": {**INT_POS, "default": 1, "description": "spacing of kernel taps"},
        "groups": {**INT_POS, "default": 1, "description": "channel groups; C and out_channels divide by it"},
        "bias": {"type": "boolean", "default": True, "description": "add a learned bias per output channel"},
        "init": INIT_ATTR,
    }
    required = ("out_channels", "kernel")
    key_attributes = ("out_channels", "kernel", "stride", "padding", "dilation", "groups")
    example = ({"out_channels": 64, "kernel": 5, "padding": 2}, (TensorType((16, 128)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank("conv1d", x, 0, (2,), "[N, C, L]")
        float_input(x)
        c, g, o = x.shape[0], attrs["groups"], attrs["out_channels"]
        if c % g or o % g:
            raise ShapeError(
                f"conv1d groups={g} must divide both the input channels {c} and out_channels {o} "
                f"(input 0 is {x})",
                0,
            )
        if attrs["padding"] == "same" and attrs["stride"] != 1:
            raise ShapeError(f'conv1d padding "same" needs stride 1, got stride {attrs["stride"]}')
        k, d = attrs["kernel"], attrs["dilation"]
        span = d * (k - 1) + 1
        _, _, pl, pr = pads4(as_conv2d(attrs), (1, k), (1, d))
        padded = x.shape[1] + pl + pr
        if span > padded:
            dil = f" (dilated {span})" if d != 1 else ""
            raise ShapeError(
                f"conv1d kernel {k}{dil} is longer than the padded input {padded} (input 0 is {x})", 0
            )
        return TensorType((o, (padded - span) // attrs["stride"] + 1))

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        w, *rest = CONV2D.params(as_conv2d(attrs), [plane(ins[0])])
        o, cg, _, k = w.shape
        return [dataclasses.replace(w, shape=(o, cg, k)), *rest]

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return CONV2D.flops(as_conv2d(attrs), [plane(ins[0])], plane(out))

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        return CONV2D.workspace(as_conv2d(attrs), [plane(ins[0])], plane(out), batch)


OP = Conv1d()
