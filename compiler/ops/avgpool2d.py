"""avgpool2d: y[c, i, j] = (1/D) · Σ_{u<kh, v<kw} xpad[c, s_h·i + u, s_w·j + v], as torch.nn.AvgPool2d.

x: [N, C, H, W] → y: [N, C, Ho, Wo]; output sizes, stride, padding and ``ceil_mode`` as maxpool2d
(no dilation, as PyTorch); padding counts as 0. The divisor D, as PyTorch: with
``count_include_pad`` (the default) the window's cells inside the padded input (kh·kw, but
fewer for a ceil_mode window hanging over the bottom/right padding's edge), else its cells inside
the unpadded input. No parameters; backward needs only shapes (saves nothing).
FLOPs per sample: forward one add per window cell read (inside the input), backward alike.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import TensorType
from .maxpool2d import Pool2d


class Avgpool2d(Pool2d):
    name = "avgpool2d"
    reads_inputs = ()
    attributes: ClassVar[dict[str, Any]] = {
        **Pool2d.attributes,
        "count_include_pad": {
            "type": "boolean",
            "default": True,
            "description": "divide by the window's cells in the padded input, not only those in the input",
        },
    }

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        fwd, _ = super().flops(attrs, ins, out)
        return fwd, fwd


OP = Avgpool2d()
