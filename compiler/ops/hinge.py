"""hinge: multi-class margin loss, as torch.nn.MultiMarginLoss(p=1):
ℓ = Σ_{i≠y} max(0, margin - x_y + x_i) / C, L = reduce(ℓ) over the batch.

logits: float [N, C]; labels: int64 [N]. "mean" averages ℓ over the batch, "sum" sums.
dx_i = [margin - x_y + x_i > 0]·g/C for i ≠ y, dx_y = -Σ of those; labels get no gradient.
FLOPs per sample: forward 4·C; backward 2·C.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import REDUCTION, ClassificationLoss, TensorType, check_rank


class Hinge(ClassificationLoss):
    name = "hinge"
    attributes: ClassVar[dict[str, Any]] = {
        "reduction": REDUCTION,
        "margin": {"type": "number", "default": 1.0, "description": "required score gap to the true class"},
    }
    cost = (4, 2)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        check_rank("hinge", ins[0], 0, (1,), "[N, C]")
        return super().shape(attrs, ins)


OP = Hinge()
