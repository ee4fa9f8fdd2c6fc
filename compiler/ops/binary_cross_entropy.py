"""binary_cross_entropy: binary cross-entropy from logits, as torch.nn.BCEWithLogitsLoss (stable):
ℓ = max(x, 0) - x·t + log(1 + exp(-|x|)), L = reduce(ℓ) → a batchless scalar.

x (logits), t (float targets in [0, 1]): [N, ...] of one shape; "mean" averages over every element
(batch included), "sum" sums. dx = (σ(x) - t)·g, dt = -x·g.
FLOPs per sample (n = numel): forward 8·n; backward 7·n.
"""

from __future__ import annotations

from .base import Loss


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    loss_kind = "binary"
    cost = (8, 7)


OP = BinaryCrossEntropy()
