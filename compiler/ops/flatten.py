"""flatten: merge the per-sample axes from ``start_axis`` on into one (a view, no FLOPs).

x: [N, d0, ..., dk] → y: [N, d0, ..., d(s-1), d_s·…·d_k]. start_axis 0 (the default) gives
[N, numel], like torch.nn.Flatten() (whose start_dim=1 counts the batch axis).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from .base import AXIS, Movement, ShapeError, TensorType, norm_axis


class Flatten(Movement):
    name = "flatten"
    attributes: ClassVar[dict[str, Any]] = {
        "start_axis": {**AXIS, "default": 0, "description": "first per-sample axis to merge"}
    }
    example = ({}, (TensorType((16, 5, 5)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        if not x.shape:
            raise ShapeError(
                f"flatten needs input 0 with at least one per-sample axis, but input 0 is {x}", 0
            )
        s = norm_axis(attrs["start_axis"], len(x.shape), "flatten start_axis")
        return TensorType((*x.shape[:s], math.prod(x.shape[s:])), x.dtype)


OP = Flatten()
