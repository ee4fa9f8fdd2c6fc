"""smooth_l1: the Huber-like loss of torch.nn.SmoothL1Loss: with d = pred - target,
ℓ = 0.5·d²/β where |d| < β, else |d| - 0.5·β; L = reduce(ℓ) → a batchless scalar.

pred, target: [N, ...] of one shape; "mean" averages over every element (batch included), "sum" sums.
β = 0 is the l1 loss (as PyTorch). dpred = (d/β where |d| < β, else sign(d))·g, dtarget = -dpred.
FLOPs per sample (n = numel): forward 5·n (subtract, abs, compare, square or subtract, sum);
backward 4·n.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import REDUCTION, Loss


class SmoothL1(Loss):
    name = "smooth_l1"
    loss_kind = "regression"
    attributes: ClassVar[dict[str, Any]] = {
        "reduction": REDUCTION,
        "beta": {
            "type": "number",
            "minimum": 0,
            "default": 1.0,
            "description": "where the loss turns from quadratic to linear; 0 = the l1 loss",
        },
    }
    key_attributes = ("reduction", "beta")
    cost = (5, 4)


OP = SmoothL1()
