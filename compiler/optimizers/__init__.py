"""The optimizer registry: an explicit list of families, no import magic.

Adding an optimizer: write compiler/optimizers/<family>.py (the contract: an
``OptimizerFamily`` named ``OPTIMIZER``) and runtime/optimizers/<family>.py (its CPU and CUDA
update kernels), add the family's name to ``NAMES`` below, its rows to the
tables in docs/training.md and its ledger keys to schemas/plan.schema.json
(README.md, "Adding an optimizer", has the whole recipe). The spec schema, the ledger keys
(``netc.compiler.plan.OPTIMIZER_SLOTS``), ``netc compile --optimizer`` and the
runtime's dispatch all read this registry.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import COMMON_FIELDS, OptimizerFamily

# The explicit list of families: one name per file in this folder.
NAMES = ("sgd", "adam", "rmsprop", "adagrad", "adadelta")

FAMILIES: dict[str, OptimizerFamily] = {
    n: importlib.import_module(f".{n}", __name__).OPTIMIZER for n in NAMES
}
# type name -> its family, e.g. "adamw" -> the adam family.
BY_TYPE: dict[str, OptimizerFamily] = {t: f for f in FAMILIES.values() for t in f.types}
TYPES: list[str] = list(BY_TYPE)
# PyTorch's defaults per type; the keys are also the fields the type reads.
DEFAULTS: dict[str, dict[str, Any]] = {t: dict(f.types[t][1]) for t, f in BY_TYPE.items()}
# Ledger key -> state slot names, in the order plan JSON lists keys.
SLOT_NAMES: dict[str, tuple[str, ...]] = {k: v for f in FAMILIES.values() for k, v in f.slots.items()}


def field_schema(name: str) -> dict[str, Any]:
    """The JSON-Schema fragment of a field (shared or a family's own)."""
    if name in COMMON_FIELDS:
        return COMMON_FIELDS[name]
    for f in FAMILIES.values():
        if name in f.fields:
            return f.fields[name]
    raise KeyError(f"no optimizer declares field {name!r}")


def parse_kind(kind: str) -> tuple[OptimizerFamily, str, dict[str, Any]]:
    """A type name or a ledger key (``rmsprop_centered``): its family, its type
    and the settings the key implies."""
    if kind in BY_TYPE:
        return BY_TYPE[kind], kind, {}
    for f in FAMILIES.values():
        if kind in f.implies:
            t, implied = f.implies[kind]
            return f, t, dict(implied)
    raise ValueError(f"train.optimizer.type: unknown optimizer {kind!r}; expected one of: {', '.join(TYPES)}")


def resolve(cfg: dict[str, Any] | None) -> tuple[OptimizerFamily, str, dict[str, Any]]:
    """A ``train.optimizer`` mapping's family, type and full hyperparameters:
    PyTorch's defaults, then what a ledger-key type implies, then the fields the
    type reads (None and other types' fields ignored)."""
    cfg = cfg or {}
    family, kind, implied = parse_kind(cfg.get("type", "sgd"))
    own = DEFAULTS[kind]
    given = {k: v for k, v in cfg.items() if k in own and v is not None}
    return family, kind, {**own, **implied, **given}


def ledger_key(cfg: dict[str, Any] | None) -> str:
    """The ledger key of a ``train.optimizer`` mapping (``{type: sgd, momentum: 0.9}`` -> ``momentum``)."""
    family, kind, hp = resolve(cfg)
    return family.key(kind, hp)


def _bounds(schema: dict[str, Any]) -> tuple[Any, Any, bool]:
    # torch.optim accepts lr = 0 and eps = 0 (it checks 0 <= lr), so the runtime reads a
    # lower bound as inclusive; the spec language (exclusiveMinimum) is stricter.
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    return lo, hi, "exclusiveMaximum" in schema


def _in_range(v: Any, lo: Any, hi: Any, open_hi: bool) -> bool:
    return (lo is None or v >= lo) and (hi is None or (v < hi if open_hi else v <= hi))


def _range_text(lo: Any, hi: Any, open_hi: bool) -> str:
    if hi is None:
        return f"at least {lo:g}"
    return f"in [{lo:g}, {hi:g}{')' if open_hi else ']'}"


def check_hyper(kind: str, hp: dict[str, Any]) -> None:
    """The ranges torch.optim enforces (from the field fragments and the
    family's cross-field rules), as ValueErrors naming the spec field."""
    family = BY_TYPE[kind]

    def bad(name: str, why: str) -> ValueError:
        return ValueError(f"train.optimizer.{name}: {why} (got {hp[name]!r}) for optimizer '{kind}'")

    for name, v in hp.items():
        s = field_schema(name)
        if s.get("type") == "number":
            lo, hi, open_hi = _bounds(s)
            if not _in_range(v, lo, hi, open_hi):  # False for NaN too
                raise bad(name, f"must be {_range_text(lo, hi, open_hi)}")
        elif s.get("type") == "array":
            lo, hi, open_hi = _bounds(s["items"])
            if len(v) != s["minItems"] or not all(_in_range(x, lo, hi, open_hi) for x in v):
                raise bad(name, f"must be two numbers {_range_text(lo, hi, open_hi)}")
    for name, why in family.check(kind, hp):
        raise bad(name, why)


def _fmt(v: Any) -> str:
    """A default as the docs write it: 1e-3, 0.9, [0.9, 0.999], false."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if v and abs(v) <= 1e-2:
        mantissa, exp = f"{v:.0e}".split("e")
        return f"{mantissa}e{int(exp)}"
    return f"{v:g}"


def optimizer_properties() -> dict[str, dict[str, Any]]:
    """The ``train.optimizer`` field schemas, in first-declared order. A field
    whose readers share one default carries it as the schema ``default``; one
    whose default differs per type says so in its description instead, since
    each type applies PyTorch's own (netc fills only a type's own defaults)."""
    out: dict[str, dict[str, Any]] = {}
    for defaults in DEFAULTS.values():
        for name in defaults:
            if name in out:
                continue
            s = {k: v for k, v in field_schema(name).items() if k != "description"}
            about = field_schema(name).get("description")
            per_value: dict[str, list[str]] = {}
            for t, d in DEFAULTS.items():
                if name in d:
                    per_value.setdefault(_fmt(d[name]), []).append(t)
            if len(per_value) == 1:
                v = defaults[name]
                s["default"] = list(v) if isinstance(v, tuple) else v
            else:
                which = ", ".join(f"{v} {'/'.join(ts)}" for v, ts in per_value.items())
                about = f"{about or name} (default: {which})"
            out[name] = {**s, "description": about} if about else s
    return out
