"""adam and adamw: ``torch.optim.Adam`` (weight decay added to the gradient) and
``torch.optim.AdamW`` (decoupled weight decay). State: exp_avg, exp_avg_sq."""

from __future__ import annotations

from .base import FRACTION, OptimizerFamily

_ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

OPTIMIZER = OptimizerFamily(
    name="adam",
    doc=__doc__,
    types={"adam": ("Adam", _ADAM), "adamw": ("AdamW", {**_ADAM, "weight_decay": 1e-2})},
    fields={"betas": {"type": "array", "items": FRACTION, "minItems": 2, "maxItems": 2}},
    slots={"adam": ("exp_avg", "exp_avg_sq"), "adamw": ("exp_avg", "exp_avg_sq")},
)
