"""constant: y = value, a fixed tensor declared in the spec (no inputs; not a parameter, never trained).

``value`` is a number (filled to ``shape``) or a nested list of exactly ``shape``; ``shape`` may be
left out with a list value (it is then the list's shape; a number then gives shape [1]). ``dtype``
is float32 (default) or int64 (integer values only). The output is an ordinary batched tensor: every
sample holds the same value ([N, *shape]), so every op takes it, and a [1] or [C, 1, 1] constant
broadcasts in add, sub, mul and div. It has no parameters (parameter counts leave it out); its value
is written each forward step into its output buffer, which the memory ledger counts as activations
(N·numel elements). Backward: nothing (no inputs). FLOPs: 0. ``zeros`` is the constant 0.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_POS, Op, ShapeError, TensorType

NUMBER = {"type": "number"}
SHAPE = {
    "oneOf": [{"type": "array", "items": INT_POS}, {"type": "null"}],
    "default": None,
    "description": "per-sample shape; null: the value's own shape ([1] for a number)",
}
DTYPE = {"enum": ["float32", "int64"], "default": "float32", "description": "element type"}


def value_shape(v: Any, where: str = "value") -> tuple[int, ...]:
    """The shape of a number or a nested list; a ragged list is a ShapeError naming the place."""
    if not isinstance(v, list):
        return ()
    if not v:
        raise ShapeError(f"constant {where} is an empty list")
    inner = [value_shape(x, f"{where}[{i}]") for i, x in enumerate(v)]
    for i, s in enumerate(inner):
        if s != inner[0]:
            raise ShapeError(
                f"constant {where} is ragged: {where}[0] has shape {list(inner[0])} but {where}[{i}] "
                f"has shape {list(s)}"
            )
    return (len(v), *inner[0])


def leaves(v: Any) -> list[Any]:
    """The numbers of a nested list, in row-major order."""
    return [x for item in v for x in leaves(item)] if isinstance(v, list) else [v]


class Constant(Op):
    name = "constant"
    family = "parameter"
    arity = 0
    attributes: ClassVar[dict[str, Any]] = {
        "value": {
            "oneOf": [NUMBER, {"type": "array", "items": {}}],
            "description": "a number (every element) or a nested list of the tensor's shape",
        },
        "shape": SHAPE,
        "dtype": DTYPE,
    }
    required: ClassVar[tuple[str, ...]] = ("value",)
    key_attributes = ("shape", "dtype")
    reads_inputs = ()
    example = ({"value": 0.5, "shape": [16, 1, 1]}, ())

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        v, shape = attrs["value"], attrs["shape"]
        got = value_shape(v)
        if any(isinstance(x, bool) or not isinstance(x, int | float) for x in leaves(v)):
            raise ShapeError(f"constant value must hold numbers only, got {v!r}")
        if attrs["dtype"] == "int64" and any(not float(x).is_integer() for x in leaves(v)):
            raise ShapeError("constant of dtype int64 needs integer values")
        if shape is None:
            return TensorType(got or (1,), attrs["dtype"])
        if got and got != tuple(shape):
            raise ShapeError(f"constant value has shape {list(got)} but shape is {list(shape)}")
        return TensorType(tuple(shape), attrs["dtype"])

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return 0, 0

    def describe(self, attrs: dict[str, Any]) -> str:
        v = attrs.get("value")  # a number is worth printing, a list is not (zeros has none)
        number = f"value={v}" if isinstance(v, int | float) else ""
        return " ".join(p for p in (number, super().describe(attrs)) if p)


OP = Constant()
