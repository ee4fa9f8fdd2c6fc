"""The op catalogue (docs/ops.md), generated from the op registry.

Regenerate with ``python -m netc.compiler.report.opsdoc docs/ops.md`` (or redirect stdout);
tests/compiler/test_opsdoc.py fails when the committed file is stale.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

from ..ops import OPS
from ..ops.base import Op, TensorType

COMMAND = "python -m netc.compiler.report.opsdoc docs/ops.md"

_SIMPLE = {"integer": "int", "number": "float", "boolean": "bool", "string": "string", "null": "null"}


def type_text(frag: dict[str, Any]) -> str:
    """A JSON-Schema fragment as a short human type, e.g. ``int ≥ 1 | [int ≥ 1, int ≥ 1]``."""
    for key in ("oneOf", "anyOf"):
        if key in frag:
            return " | ".join(type_text(f) for f in frag[key])
    if "enum" in frag:
        return " | ".join(json.dumps(v) for v in frag["enum"])
    if "const" in frag:
        return json.dumps(frag["const"])
    t = frag.get("type")
    if t == "array":
        item = type_text(frag.get("items", {}))
        lo, hi = frag.get("minItems"), frag.get("maxItems")
        if lo is not None and lo == hi:
            return "[" + ", ".join([item] * lo) + "]"
        return f"[{item}, …]" + (f" (≥ {lo} items)" if lo and lo > 1 else "")
    text = _SIMPLE.get(t, "any")
    lo = frag.get("minimum", frag.get("exclusiveMinimum"))
    hi = frag.get("maximum", frag.get("exclusiveMaximum"))
    if lo is not None and hi is not None:
        left = "(" if "exclusiveMinimum" in frag else "["
        right = ")" if "exclusiveMaximum" in frag else "]"
        return f"{text} in {left}{lo}, {hi}{right}"
    if lo is not None:
        return f"{text} {'>' if 'exclusiveMinimum' in frag else '≥'} {lo}"
    if hi is not None:
        return f"{text} {'<' if 'exclusiveMaximum' in frag else '≤'} {hi}"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _arity(op: Op) -> str:
    lo, hi = op.arity_range()
    if hi is None:
        return f"{lo} or more"
    return str(lo) if lo == hi else (f"{lo} or {hi}" if hi == lo + 1 else f"{lo} to {hi}")


def _shapes(ts: list[TensorType] | tuple[TensorType, ...]) -> str:
    return ", ".join(f"`{t}`" + (f" {t.dtype}" if t.dtype != "float32" else "") for t in ts)


def _example(op: Op) -> list[str]:
    if op.example is None:
        return []
    attrs, ins = op.example[0], list(op.example[1])
    full = op.fill_defaults(attrs)
    out = op.shape(full, ins)
    lines = [
        f"**Example:** `{json.dumps(attrs)}` on {_shapes(ins) if ins else 'no inputs'} → {_shapes([out])}",
        "",
    ]
    params = op.params(full, ins)
    if params:
        lines += ["| parameter | shape | init | trainable |", "|---|---|---|---|"]
        lines += [
            f"| `{p.name}` | {list(p.shape)} | {p.init} | {'yes' if p.trainable else 'no'} |" for p in params
        ]
        lines.append("")
    fwd, bwd = op.flops(full, ins, out)
    saved = [f"input {i}" for i in op.saves_inputs(full) if i < len(ins)]
    saved += ["output"] if op.saves_output(full) else []
    saved += [
        f"{s.name} {TensorType(s.shape, s.dtype, s.batched)} {s.dtype}" for s in op.saved(full, ins, out)
    ]
    lines.append(f"FLOPs per sample: forward {fwd:,}, backward {bwd:,}.")
    lines.append(f"Saved for backward: {', '.join(saved) or 'nothing'}.")
    ws = op.workspace(full, ins, out, 1)
    if ws:
        lines[-1] += f" Workspace: {ws:,} bytes."
    return [*lines, ""]


def _doc(op: Op) -> tuple[str, str]:
    """(summary, body) of an op's module docstring: the first paragraph without the leading
    "name:", and the rest."""
    doc = inspect.getdoc(inspect.getmodule(type(op))) or ""
    summary, _, body = doc.partition("\n\n")
    summary = " ".join(summary.split())
    return summary.removeprefix(f"{op.name}:").strip(), body.strip()


def render_op(op: Op) -> str:
    summary, body = _doc(op)
    lines = [f"## {op.name}", "", summary, ""]
    if body:
        lines += ["```text", body, "```", ""]
    facts = [f"inputs: {_arity(op)}"]
    if op.int_inputs:
        facts.append("int64 inputs: " + ", ".join(str(i) for i in op.int_inputs))
    if op.is_loss:
        facts.append("loss (output: a batchless scalar)")
    lines += ["*" + " · ".join(facts) + "*", ""]
    if op.attributes:
        lines += ["| attribute | type | default | description |", "|---|---|---|---|"]
        for name, frag in op.attributes.items():
            default = "**required**" if name in op.required else f"`{json.dumps(frag.get('default'))}`"
            row = [f"`{name}`", _cell(type_text(frag)), default, _cell(frag.get("description", ""))]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines + _example(op))


def render_ops_markdown() -> str:
    """docs/ops.md: every registered op, losses last, with attributes, an example and its costs."""
    names = sorted(OPS, key=lambda n: (OPS[n].is_loss, n))
    head = [
        "# netc op catalogue",
        "",
        f"<!-- Generated from compiler/ops by `{COMMAND}`; do not edit. -->",
        "",
        "Shapes are per sample: `[N, ...]` marks the implicit batch axis, and axis attributes count the",
        "per-sample axes only (axis 0 is the first axis after the batch). FLOPs are per sample, one",
        "multiply-add counting 2. Attributes without a default are required.",
        "",
        "| op | what it computes |",
        "|---|---|",
    ]
    head += [f"| [{n}](#{n}) | {_cell(_doc(OPS[n])[0])} |" for n in names]
    return "\n".join(head) + "\n\n" + "\n".join(render_op(OPS[n]) for n in names)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render_ops_markdown()
    if argv:
        with open(argv[0], "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
