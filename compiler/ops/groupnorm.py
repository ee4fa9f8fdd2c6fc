"""groupnorm: normalise each sample's channels in ``num_groups`` groups, as torch.nn.GroupNorm.

x: [N, C, *] (any per-sample rank ≥ 1, channels first) → same shape. The C channels split into G =
``num_groups`` groups of C/G consecutive channels; per sample n and group g: μ, σ² = mean and biased
variance over the group's (C/G)·L values (L = the numel of the axes after C);
y = w_c · (x - μ) / sqrt(σ² + eps) + b_c. Training and evaluation compute the same.

Parameters: w [C] ("ones") and b [C] ("zeros") when ``affine`` (PyTorch's weight and bias).
Forward saves "mean" and "invstd" (1/sqrt(σ² + eps)) of shape [N, G]; backward reads the input.
FLOPs per sample (n = numel): forward 7·n + 2·n with affine; backward 10·n + 3·n with affine.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AFFINE, EPS, INT_POS, Normalization, Param, Saved, ShapeError, TensorType, float_input


class Groupnorm(Normalization):
    name = "groupnorm"
    attributes: ClassVar[dict[str, Any]] = {
        "num_groups": {**INT_POS, "description": "groups the channels split into; must divide C"},
        "eps": EPS,
        "affine": AFFINE,
    }
    required = ("num_groups",)
    key_attributes = ("num_groups",)
    example = ({"num_groups": 4}, (TensorType((16, 8, 8)),))

    def groups(self, attrs: dict[str, Any], x: TensorType) -> int:
        """G, the groups each sample's channels split into (instancenorm: one per channel)."""
        return attrs["num_groups"]

    def check(self, attrs: dict[str, Any], x: TensorType) -> None:
        """The layout rule: channels first, and num_groups dividing them."""
        if not x.shape:
            raise ShapeError(f"{self.name} needs input 0 of shape [N, C, *], but input 0 is {x}", 0)
        g, c = self.groups(attrs, x), x.shape[0]
        if c % g:
            raise ShapeError(f"groupnorm num_groups={g} must divide the channels C={c} of input 0 {x}", 0)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        float_input(ins[0])
        self.check(attrs, ins[0])
        return ins[0]

    def advice(self, attrs: dict[str, Any], ins: list[TensorType]) -> str | None:
        x = ins[0]
        if x.shape and x.numel // self.groups(attrs, x) == 1:
            return f"{self.name} normalises groups of one value: its output is b whatever the input"
        return None

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        return self.affine_params(ins[0].shape[:1], attrs["affine"])

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        g = (self.groups(attrs, ins[0]),)
        return [Saved("mean", g), Saved("invstd", g)]


OP = Groupnorm()
