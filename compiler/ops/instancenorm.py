"""instancenorm: per-sample, per-channel normalisation, as torch.nn.InstanceNorm1d/2d.

x: [N, C, L] or [N, C, H, W] → same shape: groupnorm with one group per channel. μ_nc, σ²_nc = mean
and biased variance of channel c of sample n over its L (or H·W) values;
y = w_c · (x - μ_nc) / sqrt(σ²_nc + eps) + b_c.
With ``track_running_stats``, training also moves running_mean and running_var towards the batch
means of μ_nc and of the unbiased σ²_nc·L/(L-1) with ``momentum`` (as PyTorch), and evaluation
normalises with them; without it, evaluation uses the instance statistics as training does.

Parameters (PyTorch's defaults: neither): w [C] ("ones") and b [C] ("zeros") when ``affine``;
running_mean [C] ("zeros") and running_var [C] ("ones"), not trainable, when
``track_running_stats``. Forward saves "mean" and "invstd" [N, C] (in evaluation with running
statistics, those); backward reads the input. FLOPs as groupnorm: forward 7·n (+2·n affine),
backward 10·n (+3·n affine).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import AFFINE, EPS, Param, ShapeError, TensorType, check_rank
from .batchnorm1d import MOMENTUM
from .groupnorm import Groupnorm


class Instancenorm(Groupnorm):
    name = "instancenorm"
    attributes: ClassVar[dict[str, Any]] = {
        "eps": EPS,
        "momentum": MOMENTUM,
        "affine": {**AFFINE, "default": False},
        "track_running_stats": {
            "type": "boolean",
            "default": False,
            "description": "keep running statistics in training and normalise with them in evaluation",
        },
    }
    required = ()
    key_attributes = ("affine", "track_running_stats")
    example = ({"affine": True}, (TensorType((16, 8, 8)),))

    def groups(self, attrs: dict[str, Any], x: TensorType) -> int:
        return x.shape[0]

    def check(self, attrs: dict[str, Any], x: TensorType) -> None:
        check_rank(self.name, x, 0, (2, 3), "[N, C, L] or [N, C, H, W]")
        if x.numel == x.shape[0]:
            # PyTorch refuses it in training ("Expected more than 1 spatial element"): y would be b
            raise ShapeError(f"instancenorm needs more than one value per channel, but input 0 is {x}", 0)

    def advice(self, attrs: dict[str, Any], ins: list[TensorType]) -> str | None:
        return None  # one value per channel is an error here

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        c = ins[0].shape[:1]
        stats = self.running_params(c) if attrs["track_running_stats"] else []
        return self.affine_params(c, attrs["affine"]) + stats


OP = Instancenorm()
