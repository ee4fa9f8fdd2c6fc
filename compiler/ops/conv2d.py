"""conv2d: 2-d cross-correlation, as torch.nn.Conv2d.

x: [N, C, H, W] → y: [N, out_channels, Ho, Wo];
y[o, i, j] = b[o] + Σ_{c∈group(o), u, v} w[o, c, u, v] · xpad[c, s_h·i + d_h·u, s_w·j + d_w·v]
with Ho = floor((H + pad_top + pad_bottom - d_h·(kh-1) - 1) / s_h) + 1 (Wo alike).

Parameters: w [out_channels, C/groups, kh, kw] (fan_in C/groups·kh·kw, fan_out out_channels·kh·kw,
as PyTorch), b [out_channels] when ``bias``.

padding: an int, a pair [vertical, horizontal], four sides [top, bottom, left, right], "valid"
(= 0) or "same" (stride 1 only; total padding d·(k-1) per axis, the odd one on the bottom/right
side as PyTorch does).

FLOPs per sample (M = Ho·Wo·out_channels·(C/groups)·kh·kw multiply-adds): forward 2·M
(+ Ho·Wo·out_channels for the bias); backward 4·M (dx and dw) (+ Ho·Wo·out_channels for db).
Workspace: per CPU thread, the float32 im2col column matrix and output stage of a chunk of
samples (``chunk``: up to CHUNK_BYTES, so it grows with the batch only up to that) and a dWᵀ
partial. Backward reads the input.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import (
    INIT_ATTR,
    INT_NONNEG,
    INT_POS,
    PAIR_NONNEG,
    PAIR_POS,
    THREADS,
    Op,
    Param,
    ShapeError,
    TensorType,
    bias_init,
    check_rank,
    float_input,
    pair,
    window_out,
)

#: The CPU's im2col chunk: one thread's column matrix and stage for S samples stay within this
#: many bytes (float32), so one GEMM covers S samples. By measurement (runtime/kernels/_conv_gemm).
CHUNK_BYTES = 512 * 1024

PADDING = {
    "oneOf": [
        *PAIR_NONNEG["oneOf"],
        {"type": "array", "items": INT_NONNEG, "minItems": 4, "maxItems": 4},
        {"enum": ["same", "valid"]},
    ],
    "default": 0,
    "description": 'zero padding: int, [vertical, horizontal], [top, bottom, left, right], "valid" '
    'or "same" (stride 1; the odd pixel goes bottom/right)',
}


def pads4(attrs: dict[str, Any], kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, ...]:
    """The padding attribute as (top, bottom, left, right)."""
    p = attrs["padding"]
    if p == "valid":
        return (0, 0, 0, 0)
    if p == "same":
        if pair(attrs["stride"]) != (1, 1):
            raise ShapeError(f'padding "same" needs stride 1, got stride {attrs["stride"]}')
        tot = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        return (tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2)
    if isinstance(p, list) and len(p) == 4:
        return tuple(int(v) for v in p)
    ph, pw = pair(p)
    return (ph, ph, pw, pw)


class Conv2d(Op):
    name = "conv2d"
    family = "conv"
    attributes: ClassVar[dict[str, Any]] = {
        "out_channels": {**INT_POS, "description": "number of output channels"},
        "kernel": {**PAIR_POS, "description": "kernel size: int or [height, width]"},
        "stride": {**PAIR_POS, "default": 1, "description": "step: int or [vertical, horizontal]"},
        "padding": PADDING,
        "dilation": {**PAIR_POS, "default": 1, "description": "spacing of kernel taps: int or pair"},
        "groups": {**INT_POS, "default": 1, "description": "channel groups; C and out_channels divide by it"},
        "bias": {"type": "boolean", "default": True, "description": "add a learned bias per output channel"},
        "init": INIT_ATTR,
    }
    required = ("out_channels", "kernel")
    key_attributes = ("out_channels", "kernel", "stride", "padding", "dilation", "groups")
    example = ({"out_channels": 16, "kernel": 3, "padding": 1}, (TensorType((3, 32, 32)),))

    def _geometry(self, attrs: dict[str, Any], x: TensorType) -> tuple[int, int, int, int, int]:
        """(C/groups, kh, kw, Ho, Wo)."""
        c, g, o = x.shape[0], attrs["groups"], attrs["out_channels"]
        if c % g or o % g:
            raise ShapeError(
                f"conv2d groups={g} must divide both the input channels {c} and out_channels {o} "
                f"(input 0 is {x})",
                0,
            )
        k, d = pair(attrs["kernel"]), pair(attrs["dilation"])
        ho, wo = window_out("conv2d", x, k, pair(attrs["stride"]), pads4(attrs, k, d), d)
        return c // g, k[0], k[1], ho, wo

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank("conv2d", x, 0, (3,), "[N, C, H, W]")
        float_input(x)
        *_, ho, wo = self._geometry(attrs, x)
        return TensorType((attrs["out_channels"], ho, wo))

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        cg, kh, kw, _, _ = self._geometry(attrs, ins[0])
        o, fan_in, fan_out = attrs["out_channels"], cg * kh * kw, attrs["out_channels"] * kh * kw
        ps = [Param("w", (o, cg, kh, kw), attrs["init"], fan_in=fan_in, fan_out=fan_out)]
        if attrs["bias"]:
            ps.append(Param("b", (o,), bias_init(attrs["init"]), fan_in=fan_in, fan_out=fan_out))
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        cg, kh, kw, _ho, _wo = self._geometry(attrs, ins[0])
        macs = out.numel * cg * kh * kw
        bias = out.numel if attrs["bias"] else 0
        return 2 * macs + bias, 4 * macs + bias

    def chunk(self, attrs: dict[str, Any], ins: list[TensorType], batch: int, threads: int) -> int:
        """Samples per GEMM on the CPU: as many as keep one thread's column matrix and stage
        [C·kh·kw + O, S·Ho·Wo] within CHUNK_BYTES (float32), at most one thread's share of the batch."""
        _, kh, kw, ho, wo = self._geometry(attrs, ins[0])
        per_sample = (ins[0].shape[0] * kh * kw + attrs["out_channels"]) * ho * wo * 4
        share = -(-batch // max(1, min(batch, threads)))
        return max(1, min(share, CHUNK_BYTES // per_sample))

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        """Per thread (up to THREADS, at most one per sample): the im2col columns
        [C·kh·kw, S·Ho·Wo] and the stage [O, S·Ho·Wo] of a chunk of S samples (``chunk``), and a
        private dWᵀ partial [C/g·kh·kw, O]."""
        cg, kh, kw, ho, wo = self._geometry(attrs, ins[0])
        o = attrs["out_channels"]
        s = self.chunk(attrs, ins, batch, THREADS)
        per_thread = s * (ins[0].shape[0] * kh * kw + o) * ho * wo + cg * kh * kw * o
        return min(batch, THREADS) * per_thread * 4


OP = Conv2d()
