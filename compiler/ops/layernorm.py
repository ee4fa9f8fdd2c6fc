"""layernorm: normalise over the last ``normalized_axes`` per-sample axes, as torch.nn.LayerNorm.

x: [N, *lead, *norm] → same shape. Per row r (one index into N and lead): μ_r, σ²_r = mean and
biased variance over the norm axes; y = w ⊙ (x - μ_r) / sqrt(σ²_r + eps) + b.

Parameters: w ("ones") and b ("zeros") of shape norm when ``affine``. Forward saves "mean" and
"invstd" of shape [N, *lead]; backward reads the input.
FLOPs per sample (n = numel): forward 7·n + 2·n with affine; backward 10·n + 3·n with affine.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AFFINE, EPS, INT_POS, Normalization, Param, Saved, ShapeError, TensorType, float_input


class Layernorm(Normalization):
    name = "layernorm"
    attributes: ClassVar[dict[str, Any]] = {
        "normalized_axes": {**INT_POS, "default": 1, "description": "normalise over this many trailing axes"},
        "eps": EPS,
        "affine": AFFINE,
    }
    example = ({}, (TensorType((64, 128)),))

    def _split(self, attrs: dict[str, Any], x: TensorType) -> int:
        k = attrs["normalized_axes"]
        if k > len(x.shape):
            raise ShapeError(f"layernorm normalized_axes={k} exceeds the per-sample rank of input 0 {x}", 0)
        return len(x.shape) - k

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        float_input(ins[0])
        self._split(attrs, ins[0])
        return ins[0]

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        return self.affine_params(ins[0].shape[self._split(attrs, ins[0]) :], attrs["affine"])

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        lead = ins[0].shape[: self._split(attrs, ins[0])]
        return [Saved("mean", lead), Saved("invstd", lead)]


OP = Layernorm()
