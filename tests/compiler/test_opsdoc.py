"""docs/ops.md is generated from the op registry and must be current."""

from __future__ import annotations

from pathlib import Path

from netc.compiler.ops import OPS
from netc.compiler.report.opsdoc import COMMAND, render_ops_markdown, type_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "ops.md"


def test_ops_md_is_current() -> None:
    text = render_ops_markdown()
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == text, f"docs/ops.md is stale; regenerate it with `{COMMAND}`"


def test_catalogue_lists_every_op_with_its_attributes() -> None:
    text = render_ops_markdown()
    for name, op in OPS.items():
        assert f"\n## {name}\n" in text and f"[{name}](#{name})" in text
        for attr in op.attributes:
            assert f"| `{attr}` |" in text


def test_type_text() -> None:
    assert type_text({"oneOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}) == "int ≥ 1 | null"
    assert type_text({"type": "number", "minimum": 0, "exclusiveMaximum": 1}) == "float in [0, 1)"
    assert (
        type_text({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2})
        == "[int, int]"
    )
    assert type_text({"type": "array", "items": {"type": "integer"}, "minItems": 1}) == "[int, …]"
    assert type_text({"enum": ["none", "tanh"]}) == '"none" | "tanh"'
