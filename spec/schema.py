"""The language's JSON Schema (Draft 2020-12), built from the op contracts.

``build_schema()`` is the single source of schemas/network.schema.json; a
test fails when the committed file differs (regenerate with
``python -m netc.spec.schema``). Op attribute schemas come from the contracts and
the data sources' keys from their declarations (netc.sources), so adding an op or a
source never means editing the schema by hand.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

from ..compiler import optimizers
from ..compiler.ops import LAYERS, LOSSES, OPS
from ..sources import FIELDS as SOURCE_FIELDS
from ..sources import SOURCES as SOURCE_REGISTRY

SCHEMA_ID = "https://netc.dev/schemas/network.schema.json"
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
REF = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
_ARGNAME = r"\$[A-Za-z_][A-Za-z0-9_]*"
# "$c" or simple integer arithmetic on arguments: "$c * 4", "$c // 2 + 1".
ARG = rf"^{_ARGNAME}( *(\*|//|/|%|\+|-) *({_ARGNAME}|[0-9]+))*$"

_COMMON = {
    "in": {
        "$ref": "#/$defs/refs",
        "description": "input name(s): spec inputs or other modules, in any order",
    },
    "doc": {"type": "string", "description": "free text shown in drawings"},
    "trainable": {
        "type": "boolean",
        "default": True,
        "description": "false freezes this module's parameters",
    },
    "lr_mult": {"type": "number", "minimum": 0, "default": 1.0, "description": "learning-rate multiplier"},
    "share": {"$ref": "#/$defs/share"},
}
_LOSS_COMMON = {
    "in": _COMMON["in"],
    "doc": _COMMON["doc"],
    "weight": {
        "type": "number",
        "minimum": 0,
        "default": 1.0,
        "description": "this loss term's weight in the total loss: one number (per-class weights "
        "are not supported yet)",
    },
}

# Optimizer types and the fields each reads come from the optimizer contracts.
OPTIMIZERS = list(optimizers.TYPES)
SCHEDULES = [
    "constant", "step", "multistep", "exponential", "inverse_sqrt", "cosine",
    "cosine_restarts", "cyclic", "one_cycle", "reduce_on_plateau",
]  # fmt: skip
SOURCES = list(SOURCE_REGISTRY)  # the data sources, in registry order (netc.sources)

# The largest size, count or index a spec may hold (the runtime indexes with int32 in places,
# and no real network needs a 2-billion-wide axis). build_schema() puts this bound on every
# integer the language has, so a 500-digit `out_features` never reaches shape arithmetic.
MAX_SIZE = 2**31 - 1

_NUM = {"type": "number"}
_POSNUM = {"type": "number", "exclusiveMinimum": 0}
_POSINT = {"type": "integer", "minimum": 1}
_NONNEG = {"type": "integer", "minimum": 0}
_FRAC = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


def _obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    out.update(extra)
    return out


# Fields each optimizer and schedule type reads; a field another type reads is
# rejected (through the per-type if/then below) rather than silently ignored.
OPTIMIZER_FIELDS: dict[str, list[str]] = {t: list(d) for t, d in optimizers.DEFAULTS.items()}
# type -> (required fields, optional fields); runtime/schedules.py checks the same table.
SCHEDULE_FIELDS: dict[str, tuple[list[str], list[str]]] = {
    "constant": ([], []),
    "step": (["step_size"], ["gamma", "per"]),
    "multistep": (["milestones"], ["gamma", "per"]),
    "exponential": (["gamma"], ["per"]),
    "inverse_sqrt": ([], ["per"]),
    "cosine": ([], ["T_max", "eta_min", "per"]),
    "cosine_restarts": (["T_0"], ["T_mult", "eta_min", "per"]),
    "cyclic": (["max_lr"], ["base_lr", "step_size_up", "step_size_down", "mode", "gamma", "per"]),
    "one_cycle": ([], ["max_lr", "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "per"]),
    "reduce_on_plateau": ([], ["monitor", "mode", "factor", "patience", "threshold", "cooldown", "min_lr"]),
}
_CYCLIC_MODES = ["triangular", "triangular2", "exp_range"]
_PLATEAU_MODES = ["min", "max"]


def _per_type(fields: dict[str, list[str]], common: list[str], required: dict[str, list[str]],
              override: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """if type == T then only T's fields (and its required ones)."""
    out = []
    for t, names in fields.items():
        props: dict[str, Any] = {k: True for k in [*common, *names]}
        props.update(override.get(t, {}))
        then: dict[str, Any] = {"properties": props, "additionalProperties": False}
        if required.get(t):
            then["required"] = required[t]
        out.append({"if": {"properties": {"type": {"const": t}}, "required": ["type"]}, "then": then})
    return out


def _train_schema() -> dict[str, Any]:
    # Each optimizer applies PyTorch's own defaults (sgd lr 1e-3, adagrad eps 1e-10,
    # adamw weight_decay 1e-2, ...): the contracts' fields say which one schema
    # default can express (optimizers.optimizer_properties).
    optimizer = _obj(
        {
            "type": {"enum": OPTIMIZERS, "default": "sgd"},
            **optimizers.optimizer_properties(),
            "no_decay": {
                "type": "array",
                "items": {"enum": ["bias", "norm"]},
                "default": [],
                "description": "parameter kinds exempt from weight decay",
            },
        },
        ["type"],
        allOf=_per_type(OPTIMIZER_FIELDS, ["type", "no_decay"], {}, {}),
    )
    sched_fields = {t: r + o for t, (r, o) in SCHEDULE_FIELDS.items()}
    schedule = _obj(
        {
            "type": {"enum": SCHEDULES, "default": "constant"},
            "warmup": {
                **_NONNEG,
                "default": 0,
                "description": "linear warmup optimizer steps (multiplies the schedule)",
            },
            "per": {
                "enum": ["step", "epoch"],
                "description": "what the schedule counts (default: epoch for step, multistep, exponential; "
                "step for the others)",
            },
            "step_size": {**_POSINT, "description": "step: decay every step_size epochs (or steps)"},
            "milestones": {"type": "array", "items": _POSINT, "minItems": 1},
            "gamma": {**_POSNUM, "description": "decay factor (step, multistep 0.1; cyclic exp_range 1)"},
            "eta_min": {"type": "number", "minimum": 0, "description": "cosine floor (0)"},
            "T_max": {**_POSINT, "description": "cosine half period (default: the whole run)"},
            "T_0": _POSINT,
            "T_mult": _POSINT,
            "base_lr": {**_POSNUM, "description": "cyclic lower bound (default: the optimizer's lr)"},
            "max_lr": {
                **_POSNUM,
                "description": "cyclic upper bound; one_cycle peak (default: the optimizer's lr)",
            },
            "step_size_up": _POSINT,
            "step_size_down": _POSINT,
            "pct_start": _FRAC,
            "anneal_strategy": {"enum": ["cos", "linear"]},
            "div_factor": {**_POSNUM, "description": "one_cycle: initial lr = max_lr / div_factor (25)"},
            "final_div_factor": {
                **_POSNUM,
                "description": "one_cycle: final lr = initial lr / final_div_factor (1e4)",
            },
            "mode": {"enum": [*_PLATEAU_MODES, *_CYCLIC_MODES]},
            "factor": _FRAC,
            "patience": _NONNEG,
            "threshold": {
                "type": "number",
                "minimum": 0,
                "description": "reduce_on_plateau: relative (1e-4)",
            },
            "cooldown": _NONNEG,
            "min_lr": {"type": "number", "minimum": 0},
            "monitor": {"type": "string", "description": "reduce_on_plateau: the metric (val_loss)"},
        },
        ["type"],
        allOf=_per_type(
            sched_fields,
            ["type", "warmup"],
            {t: r for t, (r, _) in SCHEDULE_FIELDS.items()},
            {
                "cyclic": {"mode": {"enum": _CYCLIC_MODES}},
                "reduce_on_plateau": {"mode": {"enum": _PLATEAU_MODES}},
            },
        ),
    )
    return _obj(
        {
            "optimizer": optimizer,
            "schedule": schedule,
            "batch_size": {**_POSINT, "default": 32},
            "epochs": {**_POSINT, "default": 10},
            "seed": {**_NONNEG, "default": 0},
            "accumulate": {**_POSINT, "default": 1, "description": "minibatches per optimizer step"},
            "grad_clip": _obj({"norm": _POSNUM, "value": _POSNUM}),
            "l1": {"type": "number", "minimum": 0, "default": 0.0},
            "l2": {"type": "number", "minimum": 0, "default": 0.0},
            "early_stopping": _obj(
                {
                    "monitor": {"type": "string", "default": "val_loss"},
                    "patience": {**_NONNEG, "default": 5},
                    "mode": {"enum": ["min", "max"], "default": "min"},
                    "min_delta": {"type": "number", "minimum": 0, "default": 0.0},
                }
            ),
            "checkpoint_every": {**_POSINT, "default": 1, "description": "epochs between checkpoints"},
        }
    )


def _data_schema() -> dict[str, Any]:
    # docs/data.md is the reference for every field; descriptions here feed editor completion.
    column = {"oneOf": [{"type": "string"}, _NONNEG]}
    common = {
        "source": {
            "enum": SOURCES,
            "description": "where the samples come from (docs/data.md)",
            # Not a JSON-Schema keyword (validators ignore it): editors show each one in completion.
            "enumDescriptions": [s.doc for s in SOURCE_REGISTRY.values()],
        },
        "split": _obj({"val": {**_FRAC, "default": 0.1}, "test": _FRAC}),
        "normalize": {"enum": ["none", "standardize", "minmax"], "default": "none"},
        "augment": _obj(
            {
                "hflip": {"type": "boolean", "default": False},
                "crop_padding": _NONNEG,
                "noise_std": {"type": "number", "minimum": 0},
            },
            description="image inputs [C, H, W] only: random flips, shifted crops, Gaussian noise",
        ),
        "denoise": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "image-to-image: the target (a clean copy of the first input) is normalized "
            "like it; the first input gets Gaussian noise of this standard deviation (docs/data.md)",
        },
        "columns": {
            "type": "object",
            "additionalProperties": {"oneOf": [column, {"type": "array", "items": column, "minItems": 1}]},
            "description": "spec input name -> array key (npz, idx: images/labels, built-ins: x/y) "
            "or column indices or header names (csv)",
        },
        "limit": {**_POSINT, "description": "keep a seeded random subset of this many samples"},
        "seed": {**_NONNEG, "default": 0, "description": "seeds synthetic data and `limit`"},
    }
    # The keys only some sources read come from their declarations (netc.sources); a source
    # may not redefine a key every source shares.
    clash = sorted(set(common) & set(SOURCE_FIELDS))
    if clash:
        raise ValueError(f"data sources redefine the data section's own keys: {', '.join(clash)}")
    return _obj({**common, **SOURCE_FIELDS}, ["source"])


def _or_arg(schema: Any) -> dict[str, Any]:
    """``schema``, or a block argument in its place or in place of any list item inside it
    (`kernel: [1, $k]`). The expander checks the values again, strictly, once substituted."""

    def inside(s: Any) -> Any:
        if isinstance(s, list):
            return [inside(x) for x in s]
        if not isinstance(s, dict):
            return s
        out = {k: inside(v) for k, v in s.items()}
        if isinstance(s.get("items"), dict):
            out["items"] = _or_arg(s["items"])
        return out

    return {"anyOf": [inside(schema), {"$ref": "#/$defs/arg"}]}


def _op_def(name: str, in_block: bool) -> dict[str, Any]:
    op = OPS[name]
    common = _LOSS_COMMON if op.is_loss else _COMMON
    attrs = {k: _or_arg(v) if in_block else v for k, v in op.attributes.items()}
    props = {"op": {"const": name}, **common, **attrs}
    if in_block:
        props = {**props, "in": {"anyOf": [common["in"], {"$ref": "#/$defs/arg"}]}}
    return _obj(props, ["op", *op.required])


def _dispatch(names: list[str], prefix: str, what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["op"],
        "properties": {"op": {"enum": names, "description": what}},
        "allOf": [
            {
                "if": {"properties": {"op": {"const": n}}, "required": ["op"]},
                "then": {"$ref": f"#/$defs/{prefix}{n}"},
            }
            for n in names
        ],
    }


def build_schema() -> dict[str, Any]:
    """The whole language schema as a dict."""
    defs: dict[str, Any] = {
        "name": {"type": "string", "pattern": NAME},
        "ref": {"type": "string", "pattern": REF},
        "refs": {
            "oneOf": [
                {"$ref": "#/$defs/ref"},
                {"type": "array", "items": {"$ref": "#/$defs/ref"}, "minItems": 1},
            ]
        },
        "arg": {
            "type": "string",
            "pattern": ARG,
            "description": "a block argument, e.g. $c, or arithmetic on arguments, e.g. $c * 4",
        },
        "input": _obj(
            {
                "shape": {
                    "type": "array",
                    "items": _POSINT,
                    "description": "per-sample shape (no batch axis)",
                },
                "dtype": {"enum": ["float32", "int64"], "default": "float32"},
                "doc": {"type": "string"},
            },
            ["shape"],
        ),
        "share": {
            "description": "tied weights: the parameters of another module of the same op and shapes "
            "(a module name), or some of them, one by one ({w: emb.w}); gradients of all users are summed",
            "oneOf": [
                {"$ref": "#/$defs/ref"},
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": NAME},
                    "additionalProperties": {"$ref": "#/$defs/ref"},
                },
            ],
        },
        "block_instance": {
            "type": "object",
            "required": ["block"],
            "properties": {
                "block": {"$ref": "#/$defs/name"},
                "in": {"$ref": "#/$defs/refs"},
                "share": {
                    "$ref": "#/$defs/ref",
                    "description": "an instance of the same block whose parameters every module of this one "
                    "shares (a siamese twin)",
                },
                "repeat": {"type": "integer", "minimum": 1, "default": 1},
                "doc": {"type": "string"},
                "name": {"$ref": "#/$defs/name"},
            },
            "additionalProperties": {
                "description": "a block argument",
                "type": ["number", "string", "boolean", "array"],
            },
        },
        "module": {
            "type": "object",
            "if": {"required": ["block"]},
            "then": {"$ref": "#/$defs/block_instance"},
            "else": {"$ref": "#/$defs/layer"},
        },
        "block_module": {
            "type": "object",
            "if": {"required": ["block"]},
            "then": {"$ref": "#/$defs/block_instance"},
            "else": {"$ref": "#/$defs/block_layer"},
        },
        "sequence_item": {
            "type": "object",
            "if": {"required": ["block"]},
            "then": {"$ref": "#/$defs/block_instance"},
            "else": {"$ref": "#/$defs/layer"},
        },
        "layer": _dispatch(LAYERS, "op.", "a layer op (losses go under `losses:`)"),
        "block_layer": _dispatch(LAYERS, "block_op.", "a layer op (losses go under `losses:`)"),
        "loss": _dispatch(LOSSES, "op.", "a loss op"),
        "block": _obj(
            {
                "args": {
                    "type": "object",
                    "propertyNames": {"pattern": NAME},
                    "description": "argument name -> default value; use as $name in attributes",
                },
                "input": {
                    "oneOf": [
                        {"$ref": "#/$defs/name"},
                        {"type": "array", "items": {"$ref": "#/$defs/name"}, "minItems": 1},
                    ]
                },
                "modules": {
                    "type": "object",
                    "propertyNames": {"pattern": NAME},
                    "additionalProperties": {"$ref": "#/$defs/block_module"},
                    "minProperties": 1,
                },
                "output": {"$ref": "#/$defs/ref"},
                "doc": {"type": "string"},
            },
            ["input", "modules"],
        ),
    }
    for n in LAYERS:
        defs[f"op.{n}"] = _op_def(n, in_block=False)
        defs[f"block_op.{n}"] = _op_def(n, in_block=True)
    for n in LOSSES:
        defs[f"op.{n}"] = _op_def(n, in_block=False)
    # The `sequence` form names its items with `name:`; allow it there only.
    seq_layer = _dispatch(LAYERS, "seq_op.", "a layer op")
    defs["sequence_item"]["else"] = {"$ref": "#/$defs/seq_layer"}
    defs["seq_layer"] = seq_layer
    for n in LAYERS:
        d = json.loads(json.dumps(defs[f"op.{n}"]))
        d["properties"]["name"] = {"$ref": "#/$defs/name"}
        defs[f"seq_op.{n}"] = d

    return _bound_integers(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
            "title": "netc network spec",
            "description": "A neural network as a YAML module DAG. See docs/spec.md.",
            "type": "object",
            "required": ["netc", "inputs"],
            "additionalProperties": False,
            "properties": {
                "netc": {"const": 1, "description": "format version"},
                "name": {"type": "string"},
                "doc": {"type": "string"},
                "include": {
                    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "description": "YAML files whose blocks this spec uses (paths relative to this file)",
                },
                "inputs": {
                    "type": "object",
                    "propertyNames": {"pattern": NAME},
                    "additionalProperties": {"$ref": "#/$defs/input"},
                    "minProperties": 1,
                },
                "blocks": {
                    "type": "object",
                    "propertyNames": {"pattern": NAME},
                    "additionalProperties": {"$ref": "#/$defs/block"},
                },
                "modules": {
                    "type": "object",
                    # Dotted names let `netc compile --expand` output load again.
                    "propertyNames": {"pattern": REF},
                    "additionalProperties": {"$ref": "#/$defs/module"},
                    "minProperties": 1,
                },
                "sequence": {"type": "array", "items": {"$ref": "#/$defs/sequence_item"}, "minItems": 1},
                "losses": {
                    "type": "object",
                    "propertyNames": {"pattern": NAME},
                    "additionalProperties": {"$ref": "#/$defs/loss"},
                },
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/ref"}, "minItems": 1},
                "train": _train_schema(),
                "data": _data_schema(),
            },
            "$defs": defs,
        }
    )


def _bound_integers(schema: Any) -> Any:
    """A copy of ``schema`` whose integer schemas without a bound of their own get ±MAX_SIZE.
    A copy: the fragments are shared with the op contracts, which docs/ops.md renders."""
    if isinstance(schema, list):
        return [_bound_integers(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bound_integers(v) for k, v in schema.items()}
    if out.get("type") == "integer":
        out.setdefault("maximum", MAX_SIZE)
        out.setdefault("minimum", -MAX_SIZE)
    return out


def include_schema() -> dict[str, Any]:
    """Schema of an included file: the same language, but only blocks (and
    its own includes) are read from it, so no section is required."""
    s = build_schema()
    s["required"] = ["netc"]
    return s


def committed_schema() -> dict[str, Any]:
    """The schema file shipped in netc.schemas."""
    return json.loads(resources.files("netc.schemas").joinpath("network.schema.json").read_text())


def render() -> str:
    return json.dumps(build_schema(), indent=1) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
