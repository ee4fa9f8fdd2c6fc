"""identity: y = x; dx = dy. Any dtype; no FLOPs, saves nothing (a named tap point in a graph)."""

from __future__ import annotations

from typing import Any

from .base import Movement, TensorType


class Identity(Movement):
    name = "identity"
    example = ({}, (TensorType((16,)),))

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        return ins[0]


OP = Identity()
