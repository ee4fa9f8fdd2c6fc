"""adadelta: ``torch.optim.Adadelta``. State: square_avg, acc_delta.

s ← ρs + (1 − ρ)g²;  d = √(a + eps) / √(s + eps) · g;  a ← ρa + (1 − ρ)d²;  w ← w − lr·d
"""

from __future__ import annotations

from .base import OptimizerFamily

OPTIMIZER = OptimizerFamily(
    name="adadelta",
    doc=__doc__,
    types={"adadelta": ("Adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0})},
    fields={
        "rho": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "adadelta: decay of the averages",
        }
    },
    slots={"adadelta": ("square_avg", "acc_delta")},
)
