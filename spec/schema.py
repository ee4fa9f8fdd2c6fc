"""The language's JSON Schema (Draft 2020-12), built from the op contracts.

``build_schema()`` is the single source of schemas/network.schema.json; a
test fails when the committed file differs (regenerate with
``python -m netc.spec.schema``). Op attribute schemas come from the contracts,
so adding an op never means editing the schema by hand.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from typing import Any

from ..compiler.ops import LAYERS, LOSSES, OPS

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
}
_LOSS_COMMON = {
    "in": _COMMON["in"],
    "doc": _COMMON["doc"],
    "weight": {"type": "number", "minimum": 0, "default": 1.0, "description": "weight in the total loss"},
}

OPTIMIZERS = ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"]
SCHEDULES = [
    "constant", "step", "multistep", "exponential", "inverse_sqrt", "cosine",
    "cosine_restarts", "cyclic", "one_cycle", "reduce_on_plateau",
]  # fmt: skip
SOURCES = [
    "mnist", "digits", "iris", "breast_cancer", "wine", "diabetes",
    "npz", "csv", "idx", "xor", "spirals", "blobs",
]  # fmt: skip

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


def _train_schema() -> dict[str, Any]:
    optimizer = _obj(
        {
            "type": {"enum": OPTIMIZERS, "default": "sgd"},
            "lr": {**_POSNUM, "default": 0.01},
            "momentum": {"type": "number", "minimum": 0, "default": 0.9},
            "dampening": {"type": "number", "minimum": 0, "default": 0.0},
            "nesterov": {"type": "boolean", "default": False},
            "weight_decay": {"type": "number", "minimum": 0, "default": 0.0},
            "betas": {"type": "array", "items": _FRAC, "minItems": 2, "maxItems": 2, "default": [0.9, 0.999]},
            "eps": {**_POSNUM, "default": 1e-8},
            "alpha": {**_FRAC, "default": 0.99},
            "no_decay": {
                "type": "array",
                "items": {"enum": ["bias", "norm"]},
                "default": [],
                "description": "parameter kinds exempt from weight decay",
            },
        },
        ["type"],
    )
    schedule = _obj(
        {
            "type": {"enum": SCHEDULES, "default": "constant"},
            "warmup": {**_NONNEG, "default": 0, "description": "linear warmup steps"},
            "step_size": _POSINT,
            "milestones": {"type": "array", "items": _POSINT},
            "gamma": _POSNUM,
            "eta_min": {"type": "number", "minimum": 0},
            "T_0": _POSINT,
            "T_mult": _POSINT,
            "base_lr": _POSNUM,
            "max_lr": _POSNUM,
            "step_size_up": _POSINT,
            "pct_start": _FRAC,
            "mode": {"enum": ["min", "max", "triangular", "triangular2", "exp_range"]},
            "factor": _FRAC,
            "patience": _NONNEG,
            "monitor": {"type": "string"},
        },
        ["type"],
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
    return _obj(
        {
            "source": {"enum": SOURCES},
            "path": {"type": "string"},
            "split": _obj({"val": {**_FRAC, "default": 0.1}, "test": _FRAC}),
            "normalize": {"enum": ["none", "standardize", "minmax"], "default": "none"},
            "augment": _obj(
                {
                    "hflip": {"type": "boolean", "default": False},
                    "crop_padding": _NONNEG,
                    "noise_std": {"type": "number", "minimum": 0},
                }
            ),
            "columns": {
                "type": "object",
                "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "array", "items": _NONNEG}]},
                "description": "spec input name -> array key (npz) or column indices (csv)",
            },
            "samples": _POSINT,
            "noise": {"type": "number", "minimum": 0},
            "limit": _POSINT,
        },
        ["source"],
    )


def _op_def(name: str, in_block: bool) -> dict[str, Any]:
    op = OPS[name]
    common = _LOSS_COMMON if op.is_loss else _COMMON
    attrs = {k: {"anyOf": [v, {"$ref": "#/$defs/arg"}]} if in_block else v for k, v in op.attributes.items()}
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
        "block_instance": {
            "type": "object",
            "required": ["block"],
            "properties": {
                "block": {"$ref": "#/$defs/name"},
                "in": {"$ref": "#/$defs/refs"},
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

    return {
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
