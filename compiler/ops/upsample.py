"""upsample: spatial resampling of [N, C, H, W], as torch.nn.functional.interpolate.

x: [N, C, H, W] → y: [N, C, Ho, Wo]; per axis, output index i reads the source coordinate
nearest:   src = min(floor(i · r), H - 1)          (r = 1/scale_factor, else H/Ho; float32 as PyTorch)
bilinear:  src = r·(i + 0.5) - 0.5, clamped at 0   (align_corners false)
           src = i · (H - 1)/(Ho - 1)              (align_corners true; 0 when Ho = 1)
y[i, j] = Σ of the (at most) 2x2 neighbours floor(src) and floor(src) + 1, weighted by 1 - λ and λ
(λ = src - floor(src)) per axis; nearest takes the one cell.

Exactly one of ``scale_factor`` (a number or [vertical, horizontal], non-integers allowed: Ho =
floor(H · scale)) and ``size`` ([Ho, Wo] or one int for both) is given. ``align_corners`` is for
bilinear only (PyTorch's rule); its default there is false. The kernels precompute each axis's
source indices and weights at bind time (``axis_table``, PyTorch's float rounding included).

FLOPs per sample: nearest forward 0 (a gather), backward Ho·Wo·C (one add per output);
bilinear forward and backward 8·Ho·Wo·C (four multiply-adds per output). No workspace, nothing
saved; backward reads neither input nor output.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .base import INT_POS, Op, ShapeError, TensorType, check_rank, float_input

POS_NUMBER = {"type": "number", "exclusiveMinimum": 0}


class Upsample(Op):
    name = "upsample"
    family = "pooling"
    reads_inputs = ()
    attributes: ClassVar[dict[str, Any]] = {
        "mode": {"enum": ["nearest", "bilinear"], "default": "nearest", "description": "interpolation"},
        "scale_factor": {
            "oneOf": [
                POS_NUMBER,
                {"type": "array", "items": POS_NUMBER, "minItems": 2, "maxItems": 2},
                {"type": "null"},
            ],
            "default": None,
            "description": "output = floor(input · scale) per axis: a number or [vertical, "
            "horizontal]; give this or size",
        },
        "size": {
            "oneOf": [
                INT_POS,
                {"type": "array", "items": INT_POS, "minItems": 2, "maxItems": 2},
                {"type": "null"},
            ],
            "default": None,
            "description": "output [height, width] (one int: both); give this or scale_factor",
        },
        "align_corners": {
            "oneOf": [{"type": "boolean"}, {"type": "null"}],
            "default": None,
            "description": "bilinear only: corner pixels' centres align (true) or their edges "
            "(false, the default)",
        },
    }
    key_attributes = ("mode", "scale_factor", "size", "align_corners")
    example = ({"scale_factor": 2}, (TensorType((16, 14, 14)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank("upsample", x, 0, (3,), "[N, C, H, W]")
        float_input(x)
        return TensorType((x.shape[0], *out_size(attrs, x)))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        if attrs["mode"] == "nearest":
            return 0, out.numel
        return 8 * out.numel, 8 * out.numel


def scales(attrs: dict[str, Any]) -> tuple[float, float] | None:
    """The scale factor per axis, or None when the size is given."""
    s = attrs["scale_factor"]
    if s is None:
        return None
    return (float(s), float(s)) if not isinstance(s, list) else (float(s[0]), float(s[1]))


def out_size(attrs: dict[str, Any], x: TensorType) -> tuple[int, int]:
    """(Ho, Wo), with the located errors for the attributes."""
    given = [k for k in ("scale_factor", "size") if attrs[k] is not None]
    if len(given) != 1:
        which = "both" if given else "neither"
        raise ShapeError(f"upsample needs exactly one of scale_factor and size, got {which}")
    if attrs["mode"] == "nearest" and attrs["align_corners"] is not None:
        raise ShapeError("upsample align_corners is for mode bilinear only (mode is nearest)")
    sf = scales(attrs)
    if sf is None:
        size = attrs["size"]
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    hw = tuple(math.floor(float(n) * s) for n, s in zip(x.shape[1:], sf, strict=True))
    if min(hw) < 1:
        raise ShapeError(
            f"upsample scale_factor {attrs['scale_factor']} gives an empty output {list(hw)} for input 0 {x}",
            0,
        )
    return hw[0], hw[1]


OP = Upsample()
