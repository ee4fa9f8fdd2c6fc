"""cross_entropy: softmax cross-entropy from logits, as torch.nn.CrossEntropyLoss with the class
axis last: ℓ = -Σ_c q_c · log_softmax(x)_c, q = (1 - ε)·onehot(label) + ε/C, L = reduce(ℓ).

logits: float [N, ..., C]; labels: int64 [N, ...] (the logits' shape without the last axis), each in
[0, C). "mean" averages ℓ over every label (batch and positions), "sum" sums. ε = label_smoothing.
dx = (softmax(x) - q)·g; labels get no gradient.
FLOPs per sample (n = numel(logits), R = n / C rows): forward 5·n + 2·R (+ 2·n with smoothing);
backward 3·n.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import PROB, REDUCTION, ClassificationLoss, TensorType


class CrossEntropy(ClassificationLoss):
    name = "cross_entropy"
    attributes: ClassVar[dict[str, Any]] = {
        "reduction": REDUCTION,
        "label_smoothing": {**PROB, "default": 0.0, "description": "mass ε spread evenly over all classes"},
    }

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        n, rows = ins[0].numel, ins[1].numel
        return 5 * n + 2 * rows + (2 * n if attrs["label_smoothing"] else 0), 3 * n


OP = CrossEntropy()
