"""nll_loss: the negative log-likelihood of torch.nn.NLLLoss over log-probabilities:
ℓ = -w_y·x_y, L = reduce(ℓ) → a batchless scalar.

x (log-probabilities, e.g. from log_softmax): float [N, ..., C] (``axis: -1``, the default) or
[N, C, ...] (``axis: 1``); labels: int64 shaped like x without the class axis, each in [0, C) or
equal to ``ignore_index`` (default -100: contributes nothing). w = ``class_weights`` (default all 1).
"mean" divides the sum of ℓ by the sum of w_y over the labels not ignored, as PyTorch; "sum" sums.
dx_c = -w_y·[c = y]·g (and 1/Σ w_y for "mean"): backward reads the labels, not x; labels get no
gradient.
FLOPs per sample (n = numel(x), R = n / C rows): forward 3·R; backward n + R.
"""

from __future__ import annotations

from typing import Any

from .base import TensorType
from .cross_entropy import ClassAxisLoss


class NllLoss(ClassAxisLoss):
    name = "nll_loss"
    reads_inputs = (1,)  # backward needs the labels alone (and x's shape)

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        rows = ins[1].numel
        return 3 * rows, ins[0].numel + rows


OP = NllLoss()
