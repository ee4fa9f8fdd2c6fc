"""conv_transpose2d: 2-d transposed convolution, as torch.nn.ConvTranspose2d.

x: [N, C, H, W] → y: [N, out_channels, Ho, Wo];
y[o, s_h·i + d_h·u - p_h, s_w·j + d_w·v - p_w] += Σ_{c∈group(o)} w[c, o', u, v] · x[c, i, j] (+ b[o])
with Ho = (H - 1)·s_h - 2·p_h + d_h·(kh - 1) + output_padding_h + 1 (Wo alike).

Parameters: w [C, out_channels/groups, kh, kw] (PyTorch's layout; fan_in out_channels/groups·kh·kw
and fan_out C·kh·kw, as PyTorch computes them from w), b [out_channels] when ``bias``.

output_padding adds rows and columns at the bottom and right of the output; each must be smaller
than its axis's stride or its dilation (PyTorch's rule).

It is the adjoint of a conv2d, its ``mirror``: the conv2d from [N, out_channels, Ho, Wo] to
[N, C, H, W] with the same kernel, stride, dilation, groups and weight. The forward is the mirror's
input gradient, the input gradient is the mirror's forward, and the weight gradient is the mirror's
weight gradient with the roles of input and output gradient swapped; so the kernels are conv2d's.
FLOPs per sample (M = H·W·C·(out_channels/groups)·kh·kw multiply-adds): forward 2·M (+ Ho·Wo·
out_channels for the bias), backward 4·M (+ the same for db). Workspace: the mirror's, and an
input-sized stage for an input gradient that adds into one (an input read by several modules).
Backward reads the input.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import (
    INIT_ATTR,
    INT_POS,
    PAIR_NONNEG,
    PAIR_POS,
    Op,
    Param,
    ShapeError,
    TensorType,
    bias_init,
    check_rank,
    float_input,
    pair,
)
from .conv2d import OP as CONV2D


def _padding_bottom(p: int, op: int, s: int) -> int | None:
    """The mirror conv2d's bottom (right) padding on one axis: any pb with floor((Ho + p + pb -
    d·(k-1) - 1) / s) + 1 = H, i.e. pb in [p - op, p - op + s - 1], that is not negative (p itself
    when op < s); None when there is none (op >= p + s)."""
    if op < s:
        return p
    return p - op if p >= op else None


def mirror(attrs: dict[str, Any], x: TensorType) -> tuple[dict[str, Any], TensorType, TensorType]:
    """(attributes, input, output) of the conv2d whose input gradient this transposed convolution
    computes: from [out_channels, Ho, Wo] to x's [C, H, W]. Raises the located ShapeErrors."""
    check_rank("conv_transpose2d", x, 0, (3,), "[N, C, H, W]")
    float_input(x)
    c, g, o = x.shape[0], attrs["groups"], attrs["out_channels"]
    if c % g or o % g:
        raise ShapeError(
            f"conv_transpose2d groups={g} must divide both the input channels {c} and out_channels "
            f"{o} (input 0 is {x})",
            0,
        )
    k, s, d = pair(attrs["kernel"]), pair(attrs["stride"]), pair(attrs["dilation"])
    p, op = pair(attrs["padding"]), pair(attrs["output_padding"])
    out, bottom = [], []
    for axis, (hi, ki, si, di, pi, oi) in enumerate(zip(x.shape[1:], k, s, d, p, op, strict=True)):
        name = ("vertical", "horizontal")[axis]
        if oi >= si and oi >= di:
            raise ShapeError(
                f"conv_transpose2d output_padding {oi} ({name}) must be smaller than the stride {si} "
                f"or the dilation {di}"
            )
        size = (hi - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
        if size < 1:
            raise ShapeError(
                f"conv_transpose2d output would be {size} {('rows', 'columns')[axis]}: padding {pi} "
                f"is too large for kernel {ki}, stride {si} on input 0 {x}",
                0,
            )
        pb = _padding_bottom(pi, oi, si)
        if pb is None:
            raise ShapeError(
                f"conv_transpose2d output_padding {oi} ({name}) at stride {si} needs padding >= "
                f"{oi - si + 1}, got {pi} (not supported)"
            )
        out.append(size)
        bottom.append(pb)
    m = {
        **attrs,
        "out_channels": c,
        "padding": [p[0], bottom[0], p[1], bottom[1]],
        "bias": False,
    }
    return m, TensorType((o, *out), x.dtype), TensorType(x.shape, x.dtype)


class ConvTranspose2d(Op):
    name = "conv_transpose2d"
    family = "conv"
    attributes: ClassVar[dict[str, Any]] = {
        "out_channels": {**INT_POS, "description": "number of output channels"},
        "kernel": {**PAIR_POS, "description": "kernel size: int or [height, width]"},
        "stride": {**PAIR_POS, "default": 1, "description": "step: int or [vertical, horizontal]"},
        "padding": {
            **PAIR_NONNEG,
            "default": 0,
            "description": "rows/columns taken off each side of the output: int or [vertical, horizontal]",
        },
        "output_padding": {
            **PAIR_NONNEG,
            "default": 0,
            "description": "rows/columns added at the bottom/right of the output: int or pair, each "
            "smaller than its stride or its dilation",
        },
        "dilation": {**PAIR_POS, "default": 1, "description": "spacing of kernel taps: int or pair"},
        "groups": {**INT_POS, "default": 1, "description": "channel groups; C and out_channels divide by it"},
        "bias": {"type": "boolean", "default": True, "description": "add a learned bias per output channel"},
        "init": INIT_ATTR,
    }
    required = ("out_channels", "kernel")
    key_attributes = ("out_channels", "kernel", "stride", "padding", "output_padding", "groups")
    example = ({"out_channels": 8, "kernel": 2, "stride": 2}, (TensorType((16, 7, 7)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        _, m_in, _ = mirror(attrs, ins[0])
        return TensorType(m_in.shape)

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        m, m_in, _ = mirror(attrs, ins[0])
        # the mirror's weight [C, O/g, kh, kw] is this op's, with PyTorch's fans for it
        (w,) = CONV2D.params(m, [m_in])
        ps = [w]
        if attrs["bias"]:
            ps.append(
                Param(
                    "b",
                    (attrs["out_channels"],),
                    bias_init(attrs["init"]),
                    fan_in=w.fan_in,
                    fan_out=w.fan_out,
                )
            )
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        m, m_in, m_out = mirror(attrs, ins[0])
        fwd, bwd = CONV2D.flops(m, [m_in], m_out)  # 2·M and 4·M: the mirror has no bias
        bias = out.numel if attrs["bias"] else 0
        return fwd + bias, bwd + bias

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        """The mirror conv2d's workspace and a float32 stage the size of the input (for an input
        gradient that adds into an existing one: the mirror's forward overwrites its output)."""
        return self.mirror_workspace(attrs, ins, batch) + ins[0].numel * batch * 4

    def mirror_workspace(self, attrs: dict[str, Any], ins: list[TensorType], batch: int) -> int:
        """The mirror conv2d's part of the workspace (bytes, float32), at its start."""
        m, m_in, m_out = mirror(attrs, ins[0])
        return CONV2D.workspace(m, [m_in], m_out, batch)


OP = ConvTranspose2d()
