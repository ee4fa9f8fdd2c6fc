"""maxpool2d: y[c, i, j] = max_{u<kh, v<kw} xpad[c, s_h·i + u, s_w·j + v], as torch.nn.MaxPool2d.

x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = floor((H + 2·p_h - kh) / s_h) + 1 (Wo alike);
padding counts as -inf. ``stride`` null (the default) means stride = kernel. Padding may be at
most half the kernel (PyTorch's rule). No parameters.

Forward saves the int64 flat index (into the unpadded H·W plane) of each window's maximum as
"argmax", shape [N, C, Ho, Wo]; backward scatters dy there and reads no input.
FLOPs per sample: forward Ho·Wo·C·kh·kw comparisons; backward Ho·Wo·C (one add per output).
"""

from __future__ import annotations

from typing import Any

from .base import Pool2d, Saved, TensorType


class Maxpool2d(Pool2d):
    name = "maxpool2d"
    reads_inputs = ()

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxpool2d()
