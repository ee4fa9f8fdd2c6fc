"""cross_entropy: softmax cross-entropy from logits, as torch.nn.CrossEntropyLoss:
ℓ = (1 - ε)·w_y·(-log p_y) + (ε/C)·Σ_c w_c·(-log p_c), p = softmax(x) over the class axis, L = reduce(ℓ).

logits: float [N, ..., C] (``axis: -1``, the default) or [N, C, ...] (``axis: 1``, PyTorch's own
layout); labels: int64 shaped like the logits without the class axis, each in [0, C) or equal to
``ignore_index`` (default -100: such a label contributes nothing). w = ``class_weights`` (C numbers
≥ 0, default all 1). "mean" divides the sum of ℓ over every label (batch and positions) by the sum of
w_y over the labels not ignored (their count without weights), as PyTorch, smoothing term included;
"sum" sums. ε = label_smoothing.
dx_c = ((1 - ε)·w_y + ε·Σw/C)·p_c - (1 - ε)·w_y·[c = y] - ε·w_c/C, times g (and 1/Σ w_y for
"mean"); 0 on an ignored label's row; labels get no gradient.
FLOPs per sample (n = numel(logits), R = n / C rows): forward 5·n + 3·R (+ 2·n with smoothing,
+ 2·n more with smoothing and weights); backward 3·n + R (+ n with weights).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import PROB, REDUCTION, ClassificationLoss, ShapeError, TensorType, check_dtype, float_input

CLASS_ATTRIBUTES: dict[str, Any] = {
    "reduction": REDUCTION,
    "class_weights": {
        "oneOf": [
            {"type": "null"},
            {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 1},
        ],
        "default": None,
        "description": "a weight per class (C numbers ≥ 0), as PyTorch's weight; null = all 1",
    },
    "ignore_index": {
        "type": "integer",
        "default": -100,
        "description": "a label value that contributes nothing and is not counted by 'mean'",
    },
    "axis": {
        "enum": [-1, 1],
        "default": -1,
        "description": "the class axis of the logits: -1 = last ([N, ..., C]), 1 = PyTorch's [N, C, ...]",
    },
}


class ClassAxisLoss(ClassificationLoss):
    """A classification loss over a class axis (last or 1) with class weights and an ignored label
    value (cross_entropy, nll_loss)."""

    attributes: ClassVar[dict[str, Any]] = CLASS_ATTRIBUTES
    key_attributes = ("reduction", "axis", "ignore_index")

    @staticmethod
    def classes(attrs: dict[str, Any], logits: TensorType) -> int:
        """C: the size of the class axis of the (per-sample) logits."""
        return logits.shape[-1] if attrs["axis"] == -1 else logits.shape[0]

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        logits, labels = ins
        if attrs["axis"] == -1:
            super().shape(attrs, ins)
        else:
            float_input(logits, 0)
            check_dtype(self.name, labels, 1, "int64", "class labels")
            if not logits.shape or labels.shape != logits.shape[1:]:
                raise ShapeError(
                    f"{self.name} with axis 1 needs logits [N, C, ...] and labels [N, ...] shaped like "
                    f"the logits without axis 1, but input 0 is {logits} and input 1 is {labels}",
                    1,
                )
        self.check_weights(attrs, logits)
        return TensorType((), batched=False)

    def check_weights(self, attrs: dict[str, Any], logits: TensorType) -> None:
        w, c = attrs.get("class_weights"), self.classes(attrs, logits)
        if w is not None and len(w) != c:
            raise ShapeError(
                f"{self.name} class_weights has {len(w)} numbers, but the logits {logits} have {c} "
                f"classes on axis {attrs['axis']}",
                0,
            )

    def int_input_range(self, attrs: dict[str, Any], ins: list[TensorType]) -> dict[int, int]:
        return {1: self.classes(self.fill_defaults(attrs), ins[0])}


class CrossEntropy(ClassAxisLoss):
    name = "cross_entropy"
    attributes: ClassVar[dict[str, Any]] = {
        **CLASS_ATTRIBUTES,
        "label_smoothing": {**PROB, "default": 0.0, "description": "mass ε spread evenly over all classes"},
    }
    key_attributes = ("reduction", "axis", "ignore_index", "label_smoothing")

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        n, rows = ins[0].numel, ins[1].numel
        eps, weighted = bool(attrs["label_smoothing"]), attrs["class_weights"] is not None
        return 5 * n + 3 * rows + 2 * n * eps + 2 * n * (eps and weighted), 3 * n + rows + n * weighted


OP = CrossEntropy()
