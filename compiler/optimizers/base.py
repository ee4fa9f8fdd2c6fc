"""The optimizer contract: what the spec, the compiler and the CLI know about an
optimizer family, in pure Python (no numba).

An optimizer family is one file in this folder defining one
:class:`OptimizerFamily` named ``OPTIMIZER``; its update
kernels (CPU and CUDA) live in ``runtime/optimizers/<family>.py``, as an op's
contract in ``compiler/ops/`` has its kernels in ``runtime/kernels/``. A family
owns:

* ``types``: the ``train.optimizer.type`` names it serves, each with its
  ``torch.optim`` class and PyTorch's defaults (field order = the spec's);
* ``fields``: the JSON-Schema fragment of each field only this family reads
  (the shared ones, ``COMMON_FIELDS``, are declared once here);
* ``slots``: ledger key -> state slot names (torch's state key names), one
  float per trainable element each, and ``key(type, hp)``: which ledger key a
  configuration needs. The key strings are written into plan JSON and
  checkpoints, so a key, once released, never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Fields several families read: one fragment, so the merged schema has one
# definition per name. Defaults differ per type (lr 1e-3 for sgd, 1e-2 for
# rmsprop), so the registry writes them into the description, not "default".
COMMON_FIELDS: dict[str, dict[str, Any]] = {
    "lr": {"type": "number", "exclusiveMinimum": 0, "description": "learning rate"},
    "momentum": {"type": "number", "minimum": 0, "description": "momentum factor"},
    "weight_decay": {
        "type": "number",
        "minimum": 0,
        "description": "L2 penalty on the gradient; decoupled for adamw",
    },
    "eps": {"type": "number", "exclusiveMinimum": 0, "description": "denominator term"},
}

FRACTION = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


def _same_key(kind: str, hp: dict[str, Any]) -> str:
    return kind


def _no_rules(kind: str, hp: dict[str, Any]) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class OptimizerFamily:
    """One family of ``torch.optim`` update rules sharing a kernel module."""

    #: The family's name: its file in compiler/optimizers/ and runtime/optimizers/.
    name: str
    #: type -> (torch.optim class name, PyTorch's defaults for it).
    types: dict[str, tuple[str, dict[str, Any]]]
    #: Ledger key -> state slot names, in state-row order.
    slots: dict[str, tuple[str, ...]]
    #: What the family is and how it updates (its module's docstring: ``doc=__doc__``).
    doc: str | None
    #: Field -> JSON-Schema fragment, for the fields not in COMMON_FIELDS.
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Ledger keys that are not type names -> (type, the settings the key implies).
    implies: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    #: (type, hyperparameters with defaults filled in) -> its ledger key; a family
    #: with one key per type keeps the default (the key is the type).
    key: Callable[[str, dict[str, Any]], str] = _same_key
    #: Rules across fields that torch.optim enforces, as (field, why) pairs;
    #: single-field ranges come from the fragments.
    check: Callable[[str, dict[str, Any]], list[tuple[str, str]]] = _no_rules
