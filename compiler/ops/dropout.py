"""dropout: inverted dropout; training y = x ⊙ m / (1 - p) with m ~ Bernoulli(1 - p); inference y = x.

Forward saves the float32 mask m / (1 - p) ("mask", the input's shape); backward is dx = dy ⊙ mask
and reads no input. FLOPs per sample: forward numel (the multiply; drawing m is not counted);
backward numel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import PROB, Elementwise, Saved, TensorType


class Dropout(Elementwise):
    name = "dropout"
    family = "regularization"
    attributes: ClassVar[dict[str, Any]] = {
        "p": {**PROB, "default": 0.5, "description": "probability of zeroing an element, in [0, 1)"}
    }
    key_attributes = ("p",)
    reads_inputs = ()
    cost = (1, 1)

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("mask", out.shape)]


OP = Dropout()
