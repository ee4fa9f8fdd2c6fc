"""batchnorm1d: per-channel batch normalisation over the batch (and length), as torch.nn.BatchNorm1d.

x: [N, C] or [N, C, L] → same shape. Training: μ_c, σ²_c = mean and biased variance of channel c
over N (and L); y = w_c · (x - μ_c) / sqrt(σ²_c + eps) + b_c; running_mean ← (1-momentum)·running_mean
+ momentum·μ, running_var likewise with the unbiased variance. Inference normalises with the running
statistics.

Parameters: w [C] ("ones") and b [C] ("zeros") when ``affine``; running_mean [C] ("zeros") and
running_var [C] ("ones"), not trainable. Forward saves the batch "mean" and "invstd" (1/sqrt(σ²+eps)),
[C] each, batchless, and backward reads the input.
FLOPs per sample (n = numel): forward 7·n (mean 1, variance 3, normalise 2, …) + 2·n with affine;
backward 10·n + 3·n with affine (dw, db). Counted for training.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AFFINE, EPS, Normalization, Param, Saved, TensorType, check_rank, float_input

MOMENTUM = {
    "type": "number",
    "minimum": 0,
    "maximum": 1,
    "default": 0.1,
    "description": "weight of the batch statistics in the running averages",
}


class Batchnorm1d(Normalization):
    name = "batchnorm1d"
    attributes: ClassVar[dict[str, Any]] = {"momentum": MOMENTUM, "eps": EPS, "affine": AFFINE}
    layout: ClassVar[tuple[tuple[int, ...], str]] = ((1, 2), "[N, C] or [N, C, L]")
    # [N, C] after a linear, [N, C, L] after a conv1d: C is the producer's output axis
    folds_after: ClassVar[dict[str, int]] = {"linear": 1, "conv1d": 2}
    example = ({}, (TensorType((256,)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        check_rank(self.name, ins[0], 0, *self.layout)
        float_input(ins[0])
        return ins[0]

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        c = ins[0].shape[:1]
        return self.affine_params(c, attrs["affine"]) + self.running_params(c)

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        c = ins[0].shape[:1]
        return [Saved("mean", c, batched=False), Saved("invstd", c, batched=False)]


OP = Batchnorm1d()
