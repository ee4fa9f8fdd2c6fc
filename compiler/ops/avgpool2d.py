"""avgpool2d: y[c, i, j] = (1/D) · Σ_{u<kh, v<kw} xpad[c, s_h·i + u, s_w·j + v], as torch.nn.AvgPool2d.

x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = floor((H + 2·p_h - kh) / s_h) + 1 (Wo alike);
padding counts as 0. D = kh·kw when ``count_include_pad`` (PyTorch's default), else the number
of window cells inside the unpadded input. ``stride`` null (the default) means stride = kernel;
padding may be at most half the kernel. No parameters; backward needs only shapes (saves nothing).
FLOPs per sample: forward Ho·Wo·C·(kh·kw) (adds and the divide); backward Ho·Wo·C·kh·kw.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Pool2d, TensorType


class Avgpool2d(Pool2d):
    name = "avgpool2d"
    reads_inputs = ()
    attributes: ClassVar[dict[str, Any]] = {
        **Pool2d.attributes,
        "count_include_pad": {
            "type": "boolean",
            "default": True,
            "description": "divide by the full window size, padding included",
        },
    }

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        fwd, _ = super().flops(attrs, ins, out)
        return fwd, fwd


OP = Avgpool2d()
