"""maxpool2d: y[c, i, j] = max_{u<kh, v<kw} xpad[c, s_h·i + u, s_w·j + v], as torch.nn.MaxPool2d.

x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = floor((H + 2·p_h - kh) / s_h) + 1 (Wo alike);
padding counts as -inf. ``stride`` null (the default) means stride = kernel. Padding may be at
most half the kernel (PyTorch's rule). No parameters.

Forward saves the int64 flat index (into the unpadded H·W plane) of each window's maximum as
"argmax", shape [N, C, Ho, Wo]; backward scatters dy there and reads no input.
FLOPs per sample: forward Ho·Wo·C·kh·kw comparisons; backward Ho·Wo·C (one add per output).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import (
    PAIR_NONNEG,
    PAIR_OR_NULL,
    PAIR_POS,
    Op,
    Saved,
    ShapeError,
    TensorType,
    check_rank,
    float_input,
    pair,
    window_out,
)


class Pool2d(Op):
    """Shared shape rule of maxpool2d and avgpool2d."""

    attributes: ClassVar[dict[str, Any]] = {
        "kernel": {**PAIR_POS, "description": "window size: int or [height, width]"},
        "stride": {**PAIR_OR_NULL, "default": None, "description": "step: int or pair; null means = kernel"},
        "padding": {
            **PAIR_NONNEG,
            "default": 0,
            "description": "implicit padding per side, at most kernel/2",
        },
    }
    required = ("kernel",)
    key_attributes = ("kernel", "stride", "padding")
    example = ({"kernel": 2}, (TensorType((16, 32, 32)),))

    def geometry(self, attrs: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, stride, padding) pairs with the stride default resolved."""
        k = pair(attrs["kernel"])
        return (
            k,
            pair(attrs["stride"] if attrs["stride"] is not None else attrs["kernel"]),
            pair(attrs["padding"]),
        )

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank(self.name, x, 0, (3,), "[N, C, H, W]")
        float_input(x)
        k, s, p = self.geometry(attrs)
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ShapeError(f"{self.name} padding {list(p)} must be at most half the kernel {list(k)}")
        ho, wo = window_out(self.name, x, k, s, (p[0], p[0], p[1], p[1]))
        return TensorType((x.shape[0], ho, wo))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        k = self.geometry(attrs)[0]
        return out.numel * k[0] * k[1], out.numel


class Maxpool2d(Pool2d):
    name = "maxpool2d"
    reads_inputs = ()

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxpool2d()
