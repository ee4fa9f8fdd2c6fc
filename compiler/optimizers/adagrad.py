"""adagrad: ``torch.optim.Adagrad``. State: sum (filled with
initial_accumulator_value at the first step)."""

from __future__ import annotations

from .base import OptimizerFamily

OPTIMIZER = OptimizerFamily(
    name="adagrad",
    doc=__doc__,
    types={
        "adagrad": (
            "Adagrad",
            {
                "lr": 1e-2,
                "lr_decay": 0.0,
                "weight_decay": 0.0,
                "initial_accumulator_value": 0.0,
                "eps": 1e-10,
            },
        )
    },
    fields={
        "lr_decay": {"type": "number", "minimum": 0, "description": "adagrad: lr / (1 + (t-1) lr_decay)"},
        "initial_accumulator_value": {"type": "number", "minimum": 0, "description": "adagrad"},
    },
    slots={"adagrad": ("sum",)},
)
