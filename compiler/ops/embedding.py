"""embedding: y[..., :] = w[ids[...], :], a table lookup, as torch.nn.Embedding.

ids: int64 [N, *s] (any per-sample shape, values in [0, num_embeddings)) → y: [N, *s, dim].
Parameter: w [num_embeddings, dim], init "normal" by default (N(0, 1) as PyTorch).
Backward scatter-adds dy rows into dw at the saved ids; ids get no gradient.
FLOPs per sample: forward 0 (a gather); backward numel(y) (the scatter-add).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INIT_ATTR, INT_POS, Op, Param, TensorType, check_dtype


class Embedding(Op):
    name = "embedding"
    family = "linear"
    attributes: ClassVar[dict[str, Any]] = {
        "num_embeddings": {**INT_POS, "description": "table size (ids lie in [0, num_embeddings))"},
        "dim": {**INT_POS, "description": "vector size per id"},
        "init": {**INIT_ATTR, "default": "normal", "description": "table initializer (normal = N(0, 1))"},
    }
    required = ("num_embeddings", "dim")
    key_attributes = ("num_embeddings", "dim")
    int_inputs = (0,)
    example = ({"num_embeddings": 10000, "dim": 128}, (TensorType((64,), "int64"),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        check_dtype("embedding", ins[0], 0, "int64", "token ids")
        return TensorType((*ins[0].shape, attrs["dim"]))

    def int_input_range(self, attrs: dict[str, Any], ins: list[TensorType]) -> dict[int, int]:
        return {0: attrs["num_embeddings"]}

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        n, d = attrs["num_embeddings"], attrs["dim"]
        return [Param("w", (n, d), attrs["init"], fan_in=n, fan_out=d)]

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return 0, out.numel


OP = Embedding()
