"""sgd and momentum: ``torch.optim.SGD`` (momentum, dampening, Nesterov).

State: ``momentum_buffer`` only when momentum > 0 (ledger key ``momentum``),
none otherwise (``sgd``); type ``momentum`` is SGD with momentum 0.9.
"""

from __future__ import annotations

from typing import Any

from .base import OptimizerFamily

_SGD = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}


def _key(kind: str, hp: dict[str, Any]) -> str:
    return "momentum" if hp["momentum"] > 0 else "sgd"


def _rules(kind: str, hp: dict[str, Any]) -> list[tuple[str, str]]:
    if hp.get("nesterov") and (hp["momentum"] <= 0 or hp["dampening"] != 0):
        return [("nesterov", "needs momentum > 0 and dampening 0")]
    return []


OPTIMIZER = OptimizerFamily(
    name="sgd",
    doc=__doc__,
    types={"sgd": ("SGD", _SGD), "momentum": ("SGD", {**_SGD, "momentum": 0.9})},
    fields={"dampening": {"type": "number", "minimum": 0}, "nesterov": {"type": "boolean"}},
    slots={"sgd": (), "momentum": ("momentum_buffer",)},
    key=_key,
    check=_rules,
)
