"""relu: y = max(x, 0). dy/dx = 1 where x > 0, else 0 (0 at the kink).

Backward reads the output (y > 0 ⇔ x > 0), so the input need not be saved.
"""

from __future__ import annotations

from typing import Any

from .base import Elementwise


class Relu(Elementwise):
    name = "relu"

    def saves_inputs(self, attrs: dict[str, Any]) -> tuple[int, ...]:
        return ()

    def saves_output(self, attrs: dict[str, Any]) -> bool:
        return True


OP = Relu()
