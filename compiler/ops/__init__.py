"""The op registry: an explicit list, no import magic.

Adding an op: write compiler/ops/<op>.py (the contract, one ``OP`` instance)
and runtime/kernels/<op>.py, then add the module to ``_MODULES`` below.
"""

from __future__ import annotations

from . import (
    linear,
    relu,
)
from .base import Op

_MODULES = [
    linear,
    relu,
]

OPS: dict[str, Op] = {m.OP.name: m.OP for m in _MODULES}
LOSSES = sorted(name for name, op in OPS.items() if op.is_loss)
LAYERS = sorted(name for name, op in OPS.items() if not op.is_loss)


def get(name: str) -> Op:
    return OPS[name]
