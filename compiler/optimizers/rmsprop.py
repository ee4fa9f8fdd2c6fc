"""rmsprop: ``torch.optim.RMSprop``.

State: square_avg, plus grad_avg when centered, plus momentum_buffer when
momentum > 0: four ledger keys, so the ledger holds exactly what is kept.
"""

from __future__ import annotations

from typing import Any

from .base import FRACTION, OptimizerFamily


def _key(kind: str, hp: dict[str, Any]) -> str:
    return "rmsprop" + ("_centered" if hp["centered"] else "") + ("_momentum" if hp["momentum"] > 0 else "")


OPTIMIZER = OptimizerFamily(
    name="rmsprop",
    doc=__doc__,
    types={
        "rmsprop": (
            "RMSprop",
            {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
        )
    },
    fields={
        "alpha": {**FRACTION, "description": "rmsprop: smoothing constant"},
        "centered": {"type": "boolean", "description": "rmsprop: normalize by the variance"},
    },
    slots={
        "rmsprop": ("square_avg",),
        "rmsprop_momentum": ("square_avg", "momentum_buffer"),
        "rmsprop_centered": ("square_avg", "grad_avg"),
        "rmsprop_centered_momentum": ("square_avg", "grad_avg", "momentum_buffer"),
    },
    # A plan's ledger key stands for its type (Model.train_step builds the optimizer from
    # plan.optimizer): "centered" is a setting it implies; a momentum value it cannot.
    implies={
        "rmsprop_momentum": ("rmsprop", {}),
        "rmsprop_centered": ("rmsprop", {"centered": True}),
        "rmsprop_centered_momentum": ("rmsprop", {"centered": True}),
    },
    key=_key,
)
