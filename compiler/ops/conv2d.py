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
#: many bytes (float32), so one GEMM covers S samples. By measurement (2 cores, OpenBLAS 0.3.31,
#: batch 64-256): larger chunks ran no faster on any layer tried (LeNet-5's 6->16, ResNet-mini's
#: 3->32 and 32->32, 8->16 on 4x4, 16->32 on 8x8) and 10-60% slower from ~512 KiB: a one-sample
#: GEMM already runs near BLAS's peak (LeNet's [16 x 150] @ [150 x 100] at ~115 GFLOP/s, one
#: core); the copies around it (im2col, col2im) cost more. So S > 1 only for small feature maps.
CHUNK_BYTES = 64 * 1024

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
    epilogue_producer = True
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

    def columns(self, attrs: dict[str, Any], ins: list[TensorType]) -> tuple[int, int]:
        """(width, plane) of the CPU's im2col: the columns one sample takes in the column matrix and
        the stage, and the size of the zero-bordered input plane [C, Hp, Wp] a thread keeps (and
        the same again for its gradient; 0: none). A stride-1 layer takes the "wide" layout: output
        (i, j) at column i·Wp + j (Wp = W + pad_left + pad_right), so each column-matrix row is one
        contiguous run of the plane, (Ho - 1)·Wp + Wo long; other layers take Ho·Wo columns."""
        _, kh, kw, ho, wo = self._geometry(attrs, ins[0])
        c, h, w = ins[0].shape
        k, d = pair(attrs["kernel"]), pair(attrs["dilation"])
        pt, pb, pl, pr = pads4(attrs, k, d)
        one_by_one = kh == kw == 1 and pt == pb == pl == pr == 0  # x itself is the column matrix
        if pair(attrs["stride"]) != (1, 1) or one_by_one:
            return ho * wo, 0
        wp = w + pl + pr
        return (ho - 1) * wp + wo, c * (h + pt + pb) * wp

    def chunk(self, attrs: dict[str, Any], ins: list[TensorType], batch: int, threads: int) -> int:
        """Samples per GEMM on the CPU: as many as keep one thread's column matrix and stage
        [C·kh·kw + O, S·width] within CHUNK_BYTES (float32), at most one thread's share of the batch."""
        _, kh, kw, _, _ = self._geometry(attrs, ins[0])
        width, _ = self.columns(attrs, ins)
        per_sample = (ins[0].shape[0] * kh * kw + attrs["out_channels"]) * width * 4
        share = -(-batch // max(1, min(batch, threads)))
        return max(1, min(share, CHUNK_BYTES // per_sample))

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        """Per thread (up to THREADS, at most one per sample): the im2col columns
        [C·kh·kw, S·width] and the stage [O, S·width] of a chunk of S samples (``chunk``,
        ``columns``), the padded input plane and its gradient, and a private dWᵀ partial
        [C/g·kh·kw, O]."""
        cg, kh, kw, _, _ = self._geometry(attrs, ins[0])
        o = attrs["out_channels"]
        width, plane = self.columns(attrs, ins)
        s = self.chunk(attrs, ins, batch, THREADS)
        per_thread = s * (ins[0].shape[0] * kh * kw + o) * width + 2 * plane + cg * kh * kw * o
        return min(batch, THREADS) * per_thread * 4


OP = Conv2d()
