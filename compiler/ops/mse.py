"""mse: mean squared error, as torch.nn.MSELoss: L = reduce((pred - target)²) → a batchless scalar.

pred, target: [N, ...] of one shape. reduction "mean" divides the sum over every element (batch
included) by N·numel; "sum" does not. dpred = 2·(pred - target)·g, dtarget = -dpred.
FLOPs per sample (n = numel): forward 3·n (subtract, square, sum); backward 3·n.
"""

from __future__ import annotations

from .base import Loss


class Mse(Loss):
    name = "mse"
    loss_kind = "regression"


OP = Mse()
