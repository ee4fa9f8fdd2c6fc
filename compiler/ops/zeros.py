"""zeros: y = 0, a tensor of zeros of ``shape`` (no inputs; as ``constant`` with value 0).

The output is batched ([N, *shape], every sample zero) and takes no parameters; it is written each
forward step. FLOPs: 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_POS, TensorType
from .constant import DTYPE, Constant


class Zeros(Constant):
    name = "zeros"
    attributes: ClassVar[dict[str, Any]] = {
        "shape": {"type": "array", "items": INT_POS, "description": "per-sample shape"},
        "dtype": DTYPE,
    }
    required: ClassVar[tuple[str, ...]] = ("shape",)
    example = ({"shape": [4, 8]}, ())

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        return TensorType(tuple(attrs["shape"]), attrs["dtype"])


OP = Zeros()
