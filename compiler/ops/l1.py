"""l1: mean absolute error, as torch.nn.L1Loss: L = reduce(|pred - target|) → a batchless scalar.

pred, target: [N, ...] of one shape; "mean" averages over every element (batch included), "sum" sums.
dpred = sign(pred - target)·g (0 where equal), dtarget = -dpred.
FLOPs per sample (n = numel): forward 3·n (subtract, abs, sum); backward 3·n.
"""

from __future__ import annotations

from .base import Loss


class L1(Loss):
    name = "l1"
    loss_kind = "regression"


OP = L1()
