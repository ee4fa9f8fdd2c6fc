"""Fuzzing the whole pipeline: whatever a person writes, netc either compiles it or raises
SpecError. Any other exception escaping ``netc.load(...).compile()`` is a bug (the CLI would
print a traceback).

Two fuzzers: one mutates the parsed document of a valid spec (drop, rename, retype, rewire,
duplicate, delete) and dumps it back to YAML; the other edits the raw text character by
character. Seeds are the inline specs below plus every spec in examples/.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netc

ROOT = Path(__file__).resolve().parents[2]

MLP = """\
netc: 1
name: mlp
inputs:
  x: {shape: [8]}
  y: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 16}
  act: {op: relu, in: fc1}
  drop: {op: dropout, in: act, p: 0.1}
  fc2: {op: linear, in: drop, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [fc2, y], label_smoothing: 0.1}
outputs: [fc2]
train:
  optimizer: {type: adam, lr: 1.0e-3, betas: [0.9, 0.99]}
  schedule: {type: step, step_size: 2, gamma: 0.5}
  batch_size: 8
  epochs: 2
  early_stopping: {monitor: val_loss, patience: 1}
data: {source: iris, split: {val: 0.2}}
"""

BLOCKS = """\
netc: 1
name: blocks
inputs:
  image: {shape: [3, 8, 8]}
  label: {shape: [], dtype: int64}
blocks:
  conv_bn:
    args: {c: 4, k: 3, stride: 1}
    input: x
    modules:
      conv: {op: conv2d, in: x, out_channels: $c, kernel: $k, stride: $stride, padding: 1, bias: false}
      bn: {op: batchnorm2d, in: conv}
      act: {op: relu, in: bn}
    output: act
  residual:
    args: {c: 4}
    input: x
    modules:
      a: {block: conv_bn, in: x, c: $c}
      b: {block: conv_bn, in: a, c: $c}
      sum: {op: add, in: [b, x]}
  merge:
    input: [p, q]
    modules:
      s: {op: add, in: [p, q]}
modules:
  stem: {block: conv_bn, in: image, c: 4}
  stage: {block: residual, in: stem, repeat: 2}
  both: {block: merge, in: [stage, stem]}
  pool: {op: maxpool2d, in: both, kernel: 2}
  gap: {op: global_avgpool, in: pool}
  flat: {op: flatten, in: gap}
  logits: {op: linear, in: flat, out_features: 5}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
"""

SEQUENCE = """\
netc: 1
inputs:
  x: {shape: [4, 6]}
  t: {shape: [4, 2]}
sequence:
  - {op: reshape, shape: [24]}
  - {op: linear, out_features: 8, name: hidden}
  - {op: tanh}
  - {op: reshape, shape: [4, 2]}
  - {op: select, axis: 1, index: -1, name: last}
  - {op: linear, in: hidden, out_features: 8, name: out}
  - {op: reshape, shape: [4, 2], name: pred}
losses:
  mse: {op: mse, in: [pred, t], weight: 0.5}
"""

INLINE = {"mlp": MLP, "blocks": BLOCKS, "sequence": SEQUENCE}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """name -> (folder to write mutants into, spec text). Examples are copied with their
    included files, so mutants of them still find their includes."""
    base = tmp_path_factory.mktemp("fuzz")
    out: dict[str, tuple[Path, str]] = {}
    for name, text in INLINE.items():
        out[name] = (base, text)
    examples = ROOT / "examples"
    if examples.is_dir():
        shutil.copytree(examples, base / "examples")
        for p in sorted(examples.glob("*.yaml")):
            out[p.stem] = (base / "examples", p.read_text(encoding="utf-8"))
    for name, (folder, text) in out.items():  # every seed must itself be valid
        p = folder / f"seed_{name}.yaml"
        p.write_text(text, encoding="utf-8")
        netc.load(p).compile(batch=2)
    return out


def run_pipeline(path: Path) -> None:
    """The property: compile, or a SpecError with located diagnostics."""
    try:
        netc.load(path).compile(batch=2)
    except netc.SpecError as e:
        assert e.diagnostics, "a SpecError without diagnostics"
        for d in e.diagnostics:
            assert d.message and str(d)


# -- document mutations --------------------------------------------------------------------------

WEIRD_STRINGS = [
    "", " ", "$", "$c", "$nope", "x.y", "a.b.c", "..", ".", "a/b", "~0", "~1/", "0", "1abc", "-1",
    "1e3", "null", "true", "inf", "nan", "é", "ü" * 3, "\t", "a\nb", "{", "[", "*", "&a", "!!str",
    "linear", "relu", "conv2d", "cross_entropy", "add", "in", "op", "block", "repeat", "modules",
    "x", "image", "label", "fc1", "stem", "stage", "logits", "input", "output", "args", "shape",
]  # fmt: skip
KEYS = [
    "op", "in", "block", "repeat", "name", "doc", "trainable", "lr_mult", "weight", "shape", "dtype",
    "out_features", "out_channels", "kernel", "stride", "padding", "dilation", "groups", "bias", "p",
    "axis", "index", "axes", "num_heads", "input", "output", "args", "modules", "sequence", "losses",
    "blocks", "inputs", "outputs", "train", "data", "include", "netc", "optimizer", "lr", "type",
    "batch_size", "epochs", "schedule", "source", "split", "reduction", "label_smoothing",
]  # fmt: skip
INTS = [0, 1, 2, 3, -1, -2, 7, 64, 2**31, 2**63, -(2**63), 10**12, 10**30]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WEIRD_STRINGS),
    st.text(max_size=8),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), scalars, max_size=3),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside the document (the root excluded)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for k in path[:-1]:
        doc = doc[k]
    return doc


def _names(doc: dict) -> list[str]:
    """Names a reference could use: inputs, modules, blocks, and block-local names."""
    names: list[str] = []
    for section in ("inputs", "modules", "losses", "blocks"):
        if isinstance(doc.get(section), dict):
            names += [str(k) for k in doc[section]]
    for body in (doc.get("blocks") or {}).values() if isinstance(doc.get("blocks"), dict) else []:
        if isinstance(body, dict) and isinstance(body.get("modules"), dict):
            names += [str(k) for k in body["modules"]]
    return names or ["x"]


def _retype(v: Any, draw: Any) -> Any:
    kind = draw(st.sampled_from(["str", "list", "dict", "none", "float", "bool", "neg", "big", "nest"]))
    if kind == "str":
        return str(v)
    if kind == "list":
        return [v]
    if kind == "dict":
        return {"value": v}
    if kind == "none":
        return None
    if kind == "float":
        return float(v) + 0.5 if isinstance(v, int | float) and not isinstance(v, bool) else 1.5
    if kind == "bool":
        return not v if isinstance(v, bool) else True
    if kind == "neg":
        return -v if isinstance(v, int | float) and not isinstance(v, bool) else -1
    if kind == "big":
        return 2**64 if not isinstance(v, list) else [2**40] * max(1, len(v))
    return [[v]]


def mutate(doc: dict, draw: Any) -> None:
    """One random edit of the document, in place."""
    paths = _paths(doc)
    if not paths:
        doc[draw(st.sampled_from(KEYS))] = draw(values)
        return
    path = draw(st.sampled_from(paths))
    parent, key = _parent(doc, path), path[-1]
    op = draw(
        st.sampled_from(["drop", "rename", "replace", "retype", "rewire", "duplicate", "add_key", "swap"])
    )
    if op == "drop":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        new = draw(st.sampled_from(KEYS) | st.sampled_from(WEIRD_STRINGS) | st.sampled_from(_names(doc)))
        items = [(new if k == key else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)  # a rename onto an existing key merges the two, as YAML would not
    elif op == "replace":
        parent[key] = draw(values)
    elif op == "retype":
        parent[key] = _retype(parent[key], draw)
    elif op == "rewire":
        names = _names(doc)
        ref = draw(st.sampled_from(names) | st.lists(st.sampled_from(names), min_size=0, max_size=3))
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target["in"] = ref
    elif op == "duplicate":
        if isinstance(parent, dict):
            parent[f"{key}_copy"] = copy.deepcopy(parent[key])
        else:
            parent.insert(key, copy.deepcopy(parent[key]))
    elif op == "add_key":
        target = parent[key] if isinstance(parent[key], dict) else parent
        if isinstance(target, dict):
            target[draw(st.sampled_from(KEYS))] = draw(values)
    elif op == "swap" and isinstance(parent, dict) and len(parent) > 1:
        other = draw(st.sampled_from(list(parent)))
        parent[key], parent[other] = parent[other], parent[key]


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_documents_compile_or_raise_spec_error(seeds, data):
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    folder, text = seeds[name]
    doc = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        mutate(doc, data.draw)
    out = folder / f"mutant_{name}.yaml"
    out.write_text(_dump(doc), encoding="utf-8")
    run_pipeline(out)


# -- raw text edits ------------------------------------------------------------------------------

CHARS = st.sampled_from(list(" \t\n:-,[]{}#&*!|>'\"%@`$.0123456789xyz_\\")) | st.characters()


@st.composite
def text_edits(draw: Any, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(chars)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "cut_line", "dup_line"]))
        if kind == "insert":
            chars[i:i] = list(draw(st.text(CHARS, min_size=1, max_size=4)))
        elif kind == "delete" and chars:
            del chars[min(i, len(chars) - 1) : i + draw(st.integers(1, 8))]
        elif kind == "replace" and chars:
            chars[min(i, len(chars) - 1)] = draw(CHARS)
        elif kind in ("cut_line", "dup_line"):
            lines = "".join(chars).split("\n")
            j = min(i * len(lines) // max(1, len(chars)), len(lines) - 1)
            if kind == "cut_line":
                del lines[j]
            else:
                lines.insert(j, lines[j])
            chars = list("\n".join(lines))
    return "".join(chars)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_edited_text_compiles_or_raises_spec_error(seeds, data):
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    folder, text = seeds[name]
    mutant = data.draw(text_edits(text), label="text")
    out = folder / f"text_{name}.yaml"
    out.write_text(mutant, encoding="utf-8", errors="surrogatepass")
    run_pipeline(out)


# -- one op, random attributes and input types -------------------------------------------------------


def _attribute_values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Plausible and implausible values for one attribute: small and huge ints, lists, bools,
    floats, null, and every enum value and default the schema names."""
    named: list[Any] = []

    def walk(s: Any) -> None:
        if isinstance(s, dict):
            named.extend(s.get("enum", []))
            if "default" in s:
                named.append(s["default"])
            for v in s.values():
                walk(v)
        elif isinstance(s, list):
            for v in s:
                walk(v)

    walk(schema)
    ints = st.integers(-3, 12) | st.sampled_from(INTS)
    options = [ints, st.lists(ints, max_size=5), st.booleans(), st.floats(-2, 2), st.none()]
    return st.one_of(*options, *([st.sampled_from(named)] if named else []))


@st.composite
def one_op_specs(draw: Any) -> dict[str, Any]:
    from netc.compiler.ops import OPS

    name = draw(st.sampled_from(sorted(OPS)), label="op")
    op = OPS[name]
    lo, hi = op.arity_range()
    n = draw(st.integers(max(lo - 1, 1), (hi if hi is not None else lo + 2) + 1))
    dims = st.integers(1, 6) | st.sampled_from([2**31, 10**20])
    inputs = {
        f"i{k}": {
            "shape": draw(st.lists(dims, max_size=4)),
            "dtype": draw(st.sampled_from(["float32", "int64"])),
        }
        for k in range(n)
    }
    module = {"op": name, "in": list(inputs) if n > 1 else "i0"}
    for attr, schema in op.attributes.items():
        if attr in op.required or draw(st.booleans()):
            module[attr] = draw(_attribute_values(schema))
    doc: dict[str, Any] = {"netc": 1, "inputs": inputs}
    if op.is_loss:
        doc["modules"] = {"pre": {"op": "identity", "in": "i0"}}
        doc["losses"] = {"m": module}
    else:
        doc["modules"] = {"m": module}
    return doc


@settings(max_examples=300, deadline=None)
@given(doc=one_op_specs())
def test_every_op_with_random_attributes_and_inputs_compiles_or_raises_spec_error(tmp_path_factory, doc):
    out = tmp_path_factory.getbasetemp() / "one_op.yaml"
    out.write_text(_dump(doc), encoding="utf-8")
    run_pipeline(out)


@pytest.mark.parametrize("name", sorted(INLINE))
def test_every_prefix_of_a_valid_spec_compiles_or_raises_spec_error(tmp_path, name):
    """A spec cut off anywhere (a half-saved file) is a SpecError, never a crash."""
    text = INLINE[name]
    out = tmp_path / "cut.yaml"
    for n in range(0, len(text), 7):
        out.write_text(text[:n], encoding="utf-8")
        run_pipeline(out)
