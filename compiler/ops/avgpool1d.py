"""avgpool1d: y[c, i] = (1/D) · Σ_{u<k} xpad[c, s·i + u], as torch.nn.AvgPool1d.

x: [N, C, L] → y: [N, C, Lo]; output sizes, padding and ``ceil_mode`` follow maxpool1d's
``Pool1d`` (no dilation, as PyTorch); padding counts as 0. D as avgpool2d: with
``count_include_pad`` (PyTorch's default) the window's cells inside the padded input (k, fewer
for a ceil_mode window hanging over the right padding's edge), else those inside the unpadded
input. No parameters; backward needs only shapes (saves nothing).

It is avgpool2d on the view [N, C, 1, L] with kernel [1, k] (``Pool1d.as_pool2d``), kernels
included. FLOPs per sample: forward = backward = one add per window cell read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .avgpool2d import OP as AVGPOOL2D
from .base import TensorType
from .maxpool1d import Pool1d


class Avgpool1d(Pool1d):
    name = "avgpool1d"
    attributes: ClassVar[dict[str, Any]] = {
        **Pool1d.attributes,
        "count_include_pad": AVGPOOL2D.attributes["count_include_pad"],
    }

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        fwd, _ = super().flops(attrs, ins, out)
        return fwd, fwd


OP = Avgpool1d()
