"""Fuzzing the whole pipeline: whatever a person writes, netc either compiles it and prints
every report, or raises SpecError. Any other exception escaping load, compile, the summary
table, the JSON summary, the plan JSON, the expanded spec or the drawing's DOT source is a
bug (the CLI would print a traceback), and so is a case that takes more than two seconds.

The main fuzzer is a seeded mutator over every spec in examples/ and the block files they
include (examples/blocks/): each case copies the examples, applies one to three random edits
to a spec or to an included file (deleted and renamed keys, wrong types, huge, negative,
zero, NaN and infinite numbers, 500- and 5,000-digit integers, cycles, bad block arguments,
repeat 0/-1/huge and nested repeats, recursive, missing and foreign includes, alias bombs,
Python tags, tabs, a BOM, bad UTF-8, control characters, deep nesting, character edits), and
runs every pass in-process. Case i of seed s is always the same case: a failure names it,
and ``NETC_FUZZ_CASES`` / ``NETC_FUZZ_SEED`` / ``NETC_FUZZ_FIRST`` run more, other or one.

Smaller fuzzers follow: random attributes and input types for every op (hypothesis), and
every prefix of a valid spec (a half-saved file).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import netc
from netc.compiler.report.draw import to_dot
from netc.compiler.report.expanded import expanded_yaml
from netc.compiler.report.summary import summary_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

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
      conv: {op: conv2d, in: x, out_channels: $c, kernel: [$k, $k], stride: $stride, padding: 1, bias: false}
      bn: {op: batchnorm2d, in: conv}
      act: {op: relu, in: bn}
    output: act
  residual:
    args: {c: 4}
    input: x
    modules:
      a: {block: conv_bn, in: x, c: $c}
      b: {block: conv_bn, in: a, c: $c // 2 * 2}
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


def run_pipeline(path: Path) -> None:
    """The property: load, compile and every report, or a SpecError with located diagnostics."""
    try:
        net = netc.load(path)
        plan = net.compile(batch=2)
    except netc.SpecError as e:
        assert e.diagnostics, "a SpecError without diagnostics"
        for d in e.diagnostics:
            assert d.message and str(d)
        assert e.report()
        return
    plan.summary()
    json.dumps(summary_dict(plan))
    json.loads(plan.to_json())
    expanded_yaml(net.expanded)
    to_dot(plan)
    to_dot(plan, collapse=True)
    for w in net.warnings:
        assert w.message and str(w)


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the mutator's own speed
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_SafeDumper, sort_keys=False, allow_unicode=True, default_flow_style=None)


# -- the seeded mutator --------------------------------------------------------------------------

KEYS = [
    "op", "in", "block", "repeat", "name", "doc", "trainable", "lr_mult", "weight", "shape", "dtype",
    "out_features", "out_channels", "kernel", "stride", "padding", "dilation", "groups", "bias", "p",
    "axis", "index", "axes", "num_heads", "input", "output", "args", "modules", "sequence", "losses",
    "blocks", "inputs", "outputs", "train", "data", "include", "netc", "optimizer", "lr", "type",
    "batch_size", "epochs", "schedule", "source", "split", "reduction", "label_smoothing", "dim",
]  # fmt: skip
WEIRD_STRINGS = [
    "", " ", "$", "$c", "$nope", "$dim", "$c * 2", "$c / 0", "$c // 3 + 1", "x.y", "a.b.c", "..", ".",
    "a/b", "~0", "~1/", "0", "1abc", "-1", "1e3", "null", "true", "inf", "nan", "é", "ü" * 3, "\t",
    "a\nb", "{", "[", "*", "&a", "!!str", "2 * 4", "linear", "relu", "conv2d", "cross_entropy",
    "conv_transpose2d", "int8", "float16", "add", "in", "op", "block", "modules", "x", "image",
    "label", "input", "output", "args", "shape", "encoder", "stage", "\u202e", "\x00", "a" * 300,
]  # fmt: skip
BIG = 10**500
INTS = [0, 1, 2, 3, -1, -2, 7, 64, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63), 10**12, 10**30]
NUMBERS: list[Any] = [
    *INTS, BIG, -BIG, 0.0, -0.0, 0.5, -0.5, 1.5, 1e-320, 1e308, -1e308, 1e300,
    math.nan, math.inf, -math.inf, True, False,
]  # fmt: skip
# Number spellings only the text can carry: PyYAML cannot write a 5,000-digit int, and YAML
# 1.1 reads hex, octal, binary, sexagesimal and underscored integers.
NUMBER_TEXTS = [
    "1" + "0" * 500, "-" + "9" * 500, "1" + "0" * 5000, "1e400", "-1e400", ".nan", ".NaN", ".inf",
    "-.inf", "+.inf", "0x" + "f" * 100, "0x7fffffff", "0o17", "0b" + "1" * 70, "1_000_000", "1:30",
    "190:20:30", "+1", "-0", "0.", ".5", "1e-400", "4.9e-324", "2147483648", "9223372036854775808",
]  # fmt: skip
TAGS = [
    '!!python/object/apply:os.system ["echo pwned"]', "!!python/name:os.system", "!!python/tuple [1, 2]",
    "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1]", "!custom 3", "!!float 3", "!!int 3.5",
    "!!str 3", "!!map {}", "!!seq []", "!!timestamp 2001-12-14", "!!null ''", "!<tag:x.org,2000:y> 1",
]  # fmt: skip
CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\ufffe", "\t", "\r", "\v"]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xc0\xaf"]


class Case:
    """One fuzz case: the files of a copy of examples/ as bytes (relative name -> content), the
    spec to compile, the edits made, and the random source that chose them."""

    def __init__(self, rng: random.Random, files: dict[str, bytes], spec: str) -> None:
        self.rng = rng
        self.files = files  # the pristine copy
        self.changed: dict[str, bytes] = {}  # name -> new content (a new file, or an edited one)
        self.spec = spec
        self.edits: list[str] = []


def _paths(doc: Any) -> list[tuple]:
    """Every path to a value inside a document (the root excluded), without recursion: a
    mutant may nest thousands deep."""
    out: list[tuple] = []
    stack: list[tuple[Any, tuple]] = [(doc, ())]
    while stack:
        node, prefix = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for k, v in items:
            out.append((*prefix, k))
            stack.append((v, (*prefix, k)))
    return sorted(out, key=str)


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _mappings(doc: Any, want: Callable[[dict], bool]) -> list[dict]:
    """Every mapping inside ``doc`` for which ``want`` holds."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if want(node):
                out.append(node)
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return out


def _module_maps(doc: Any) -> list[dict]:
    """The `modules:` mappings of the spec and of its blocks."""
    maps = [doc.get("modules")] if isinstance(doc, dict) else []
    blocks = doc.get("blocks") if isinstance(doc, dict) else None
    for body in blocks.values() if isinstance(blocks, dict) else []:
        if isinstance(body, dict):
            maps.append(body.get("modules"))
    return [m for m in maps if isinstance(m, dict) and m]


def _names(doc: Any) -> list[str]:
    names: list[str] = []
    for section in ("inputs", "modules", "losses", "blocks"):
        if isinstance(doc, dict) and isinstance(doc.get(section), dict):
            names += [str(k) for k in doc[section]]
    for m in _module_maps(doc):
        names += [str(k) for k in m]
    return names or ["x"]


def _typo(rng: random.Random, word: str) -> str:
    w = list(str(word))
    kind = rng.randrange(4)
    if kind == 0 and w:
        del w[rng.randrange(len(w))]
    elif kind == 1 and len(w) > 1:
        i = rng.randrange(len(w) - 1)
        w[i], w[i + 1] = w[i + 1], w[i]
    elif kind == 2:
        w.insert(rng.randrange(len(w) + 1), rng.choice("aesx_1"))
    else:
        return rng.choice(KEYS)
    return "".join(w)


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 2 else 3)
    if kind == 0:
        return rng.choice(NUMBERS)
    if kind == 1:
        return rng.choice(WEIRD_STRINGS)
    if kind == 2:
        return rng.choice([None, True, False, [], {}])
    if kind == 3:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == 4:
        return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return rng.choice(_NESTED)


_NESTED = [
    [[[[[[[[[[1]]]]]]]]]],
    json.loads("[" * 70 + "]" * 70),
    json.loads('{"a": ' * 70 + "1" + "}" * 70),
    list(range(2000)),
    {f"k{i}": i for i in range(300)},
]


# Each document edit takes (rng, doc) and changes doc in place; returns a label, or None when
# it did not apply (the mutator then tries another).


def d_delete(rng: random.Random, doc: Any) -> str | None:
    paths = _paths(doc)
    if not paths:
        return None
    path = rng.choice(paths)
    del _get(doc, path[:-1])[path[-1]]
    return f"delete {path}"


def d_retype(rng: random.Random, doc: Any) -> str | None:
    paths = _paths(doc)
    if not paths:
        return None
    path = rng.choice(paths)
    _get(doc, path[:-1])[path[-1]] = v = _value(rng)
    return f"set {path} = {str(v)[:40]}"


def d_number(rng: random.Random, doc: Any) -> str | None:
    """Replace a number (or, less often, anything) with an extreme one."""
    paths = _paths(doc)
    nums = [p for p in paths if isinstance(_get(doc, p), int | float)]
    if not (nums or paths):
        return None
    path = rng.choice(nums if nums and rng.random() < 0.8 else paths)
    v = rng.choice(NUMBERS)
    _get(doc, path[:-1])[path[-1]] = v
    return f"number {path} = {str(v)[:20]}"


def d_rename(rng: random.Random, doc: Any) -> str | None:
    paths = [p for p in _paths(doc) if isinstance(_get(doc, p[:-1]), dict)]
    if not paths:
        return None
    path = rng.choice(paths)
    parent, key = _get(doc, path[:-1]), path[-1]
    new = rng.choice([_typo(rng, key), rng.choice(KEYS), rng.choice(_names(doc)), rng.choice(WEIRD_STRINGS)])
    items = [(new if k == key else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)
    return f"rename {path} -> {new!r}"


def d_rewire(rng: random.Random, doc: Any) -> str | None:
    """Point an `in` somewhere else: a later module (a cycle), itself, or a wrong name."""
    maps = _module_maps(doc)
    if not maps:
        return None
    mods = rng.choice(maps)
    names = list(mods)
    i = rng.randrange(len(names))
    body = mods[names[i]]
    if not isinstance(body, dict):
        return None
    choice = rng.randrange(4)
    ref: Any = (
        names[i]
        if choice == 0
        else names[rng.randrange(i, len(names))]
        if choice == 1
        else rng.sample(_names(doc), min(3, len(_names(doc))))
        if choice == 2
        else _typo(rng, rng.choice(names))
    )
    body["in"] = ref
    return f"rewire {names[i]}.in = {ref}"


def d_duplicate(rng: random.Random, doc: Any) -> str | None:
    paths = _paths(doc)
    if not paths:
        return None
    path = rng.choice(paths)
    parent, key = _get(doc, path[:-1]), path[-1]
    if isinstance(parent, dict):
        parent[f"{key}_copy"] = copy.deepcopy(parent[key])
    else:
        parent.insert(key, copy.deepcopy(parent[key]))
    return f"duplicate {path}"


def _instances(doc: Any) -> list[dict]:
    """Every block instance: in `modules:`, in blocks' modules, and in `sequence:`."""
    items = [m for mods in _module_maps(doc) for m in mods.values()]
    seq = doc.get("sequence") if isinstance(doc, dict) else None
    items += seq if isinstance(seq, list) else []
    return [m for m in items if isinstance(m, dict) and "block" in m]


def d_block_args(rng: random.Random, doc: Any) -> str | None:
    """Bad block arguments: unknown, missing, text expressions, lists, huge expressions."""
    inst = _instances(doc)
    blocks = doc.get("blocks") if isinstance(doc, dict) else None
    defs = [b for b in blocks.values() if isinstance(b, dict)] if isinstance(blocks, dict) else []
    if not inst and not defs:
        return None
    terms = " + ".join(["$dim"] * rng.choice([2, 16, 17, 1000]))
    value = rng.choice(
        [
            "2 * 4", "$nope", [1, "$k"], "", None, BIG, math.nan, terms, "$c * " + "9" * 60, [],
            {"a": 1}, True, -1, 0, 2**40, "$c", "$c / 0", "1" + "0" * 30,
        ]
    )  # fmt: skip
    if inst and (not defs or rng.random() < 0.6):
        m = rng.choice(inst)
        args = [k for k in m if k not in ("block", "in", "repeat", "doc", "name")]
        if args and rng.random() < 0.3:
            del m[rng.choice(args)]
            return "drop a block argument"
        key = rng.choice([*args, "nope", "c", "dim"]) if args else rng.choice(["nope", "c", "dim"])
        m[key] = value
        return f"block argument {key} = {str(value)[:30]}"
    body = rng.choice(defs)
    mods = body.get("modules")
    if isinstance(mods, dict) and mods and rng.random() < 0.6:  # an attribute as an expression
        name = rng.choice(list(mods))
        if isinstance(mods[name], dict):
            attr = rng.choice([k for k in mods[name] if k not in ("op", "in")] or ["out_features"])
            mods[name][attr] = value
            return f"block attribute {name}.{attr} = {str(value)[:30]}"
    if isinstance(body.get("args"), dict) and body["args"]:
        body["args"][rng.choice(list(body["args"]))] = value
        return f"block default = {str(value)[:30]}"
    body["args"] = {"dim": value}
    return "block args"


def d_repeat(rng: random.Random, doc: Any) -> str | None:
    """repeat 0, -1, huge; or a chain of three blocks that each repeat the next 99,999 times."""
    if isinstance(doc, dict) and isinstance(doc.get("modules"), dict) and rng.random() < 0.3:
        inputs = doc.get("inputs")  # an earlier edit may have made it any YAML value
        first = next(iter(inputs), "x") if isinstance(inputs, dict) else "x"
        blocks = doc.setdefault("blocks", {}) if isinstance(doc.get("blocks", {}), dict) else None
        if blocks is None:
            return None
        n = rng.choice([2, 99999, 2**31 - 1])
        blocks["fz_c"] = {"input": "x", "modules": {"id": {"op": "identity", "in": "x"}}}
        blocks["fz_b"] = {"input": "x", "modules": {"c": {"block": "fz_c", "in": "x", "repeat": n}}}
        blocks["fz_a"] = {"input": "x", "modules": {"b": {"block": "fz_b", "in": "x", "repeat": n}}}
        doc["modules"]["fz_top"] = {"block": "fz_a", "in": first, "repeat": n}
        return f"nested repeat {n}"
    inst = _instances(doc)
    if not inst:
        return None
    m = rng.choice(inst)
    m["repeat"] = v = rng.choice([0, -1, 1, 2, 3, 99999, 10**9, 2**31, BIG, 1.5, "$r", "2", None, [2]])
    return f"repeat = {str(v)[:20]}"


def d_self_block(rng: random.Random, doc: Any) -> str | None:
    """A block that uses itself, directly or through another block."""
    blocks = doc.get("blocks") if isinstance(doc, dict) else None
    if not isinstance(blocks, dict) or not blocks:
        return None
    name = rng.choice(list(blocks))
    other = rng.choice(list(blocks))
    body = blocks[name]
    if not isinstance(body, dict) or not isinstance(body.get("modules"), dict):
        return None
    inp = body.get("input")
    inp = inp if isinstance(inp, str) else "x"
    body["modules"]["fz_loop"] = {"block": other, "in": inp}
    return f"block {name} uses {other}"


def d_include(rng: random.Random, doc: Any, case: Case) -> str | None:
    """Includes: itself, a cycle, missing files, folders, devices, files that are no spec."""
    if not isinstance(doc, dict):
        return None
    spec_dir = str(Path(case.spec).parent)
    loop = str(Path(spec_dir) / "fz_loop.yaml")
    case.changed[loop] = f"netc: 1\ninclude: {Path(case.spec).name}\nblocks: {{}}\n".encode()
    case.changed[str(Path(spec_dir) / "fz_passwd.yaml")] = b"root:x:0:0:root:/root:/bin/bash\nsecret: [\n"
    case.changed[str(Path(spec_dir) / "fz_list.yaml")] = b"- root\n- hunter2\n"
    case.changed[str(Path(spec_dir) / "fz_tab.yaml")] = b"netc: 1\nblocks:\n\tb: 1\n"
    target = rng.choice(
        [
            Path(case.spec).name, "fz_loop.yaml", "missing.yaml", "../../../../../../etc/passwd",
            "/etc/passwd", "/etc/hostname", "/etc/shadow", "blocks", "blocks/", "/dev/zero",
            "/dev/zero.yaml", "fz_passwd.yaml", "fz_list.yaml", "fz_tab.yaml", "", ".", "..",
            "blocks/transformer.yaml", "./blocks/../blocks/transformer.yaml", "/", "a" * 300 + ".yaml",
            "\x00.yaml", 3, None, [], ["blocks/transformer.yaml", "blocks/transformer.yaml"],
        ]
    )  # fmt: skip
    old = doc.get("include")
    if isinstance(old, list) and rng.random() < 0.5:
        doc["include"] = [*old, target]
    else:
        doc["include"] = target
    return f"include {str(target)[:40]}"


DOC_EDITS = [
    d_delete, d_retype, d_number, d_rename, d_rewire, d_duplicate, d_block_args, d_repeat,
    d_self_block, d_include,
]  # fmt: skip


# Text edits take (rng, text) and return the new text.


def t_number(rng: random.Random, text: str) -> str:
    spots = [m.span() for m in re.finditer(r"(?<=[\s\[,:])-?\d+(?:\.\d+)?(?:e-?\d+)?(?=[\s,\]}])", text)]
    if not spots:
        return text
    a, b = rng.choice(spots)
    return text[:a] + rng.choice(NUMBER_TEXTS) + text[b:]


def t_alias_bomb(rng: random.Random, text: str) -> str:
    """Billion laughs: nine levels of nine aliases is 387 million values."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, rng.choice([3, 9, 12])):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"
    if rng.random() < 0.5:
        return bomb + text
    # ... or use the bomb as a module's value
    return text + bomb.replace("lol0:", "bomb0:") + f"\nmodules2: *l{len(lines) - 1}\n"


def t_self_alias(rng: random.Random, text: str) -> str:
    return text + rng.choice(["a: &a [*a]\n", "b: &b {x: *b}\n", "c: &c\n  - *c\n", "d: *undefined\n"])


def t_tag(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    cands = [i for i, line in enumerate(lines) if ": " in line]
    if not cands:
        return rng.choice(TAGS) + "\n" + text
    i = rng.choice(cands)
    key, _, _ = lines[i].partition(": ")
    lines[i] = f"{key}: {rng.choice(TAGS)}"
    return "\n".join(lines)


def t_tabs(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    stripped = lines[i].lstrip(" ")
    indent = len(lines[i]) - len(stripped)
    lines[i] = rng.choice(["\t", " \t", "\t" * max(1, indent // 2)]) + stripped
    return "\n".join(lines)


def t_bom(rng: random.Random, text: str) -> str:
    i = 0 if rng.random() < 0.6 else rng.randrange(len(text) + 1)
    return text[:i] + "\ufeff" + text[i:]


def t_control(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(CONTROL) + text[i:]


def t_newlines(rng: random.Random, text: str) -> str:
    return text.replace("\n", rng.choice(["\r\n", "\r", "\n\n", "\u2028"]))


def t_deep(rng: random.Random, text: str) -> str:
    depth = rng.choice([40, 70, 200, 5000])
    nest = rng.choice(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth])
    return text + f"\ndeep: {nest}\n"


def t_chars(rng: random.Random, text: str) -> str:
    """Character edits, as a hurried person (or a broken editor) makes them."""
    chars = list(text)
    for _ in range(rng.randrange(1, 6)):
        i = rng.randrange(len(chars) + 1)
        kind = rng.randrange(5)
        if kind == 0:
            chars[i:i] = list(rng.choice(" \t\n:-,[]{}#&*!|>'\"%@`$.0123456789xyz_\\"))
        elif kind == 1 and chars:
            del chars[min(i, len(chars) - 1) : i + rng.randrange(1, 9)]
        elif kind == 2 and chars:
            chars[min(i, len(chars) - 1)] = chr(
                rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)])
            )
        else:
            lines = "".join(chars).split("\n")
            j = rng.randrange(len(lines))
            if kind == 3:
                del lines[j]
            else:
                lines.insert(j, lines[j])  # a duplicate key, often
            chars = list("\n".join(lines))
    return "".join(chars)


def t_truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def t_documents(rng: random.Random, text: str) -> str:
    return rng.choice(["---\n" + text, text + "\n---\nnetc: 1\n", text + "\n...\n", "%YAML 1.1\n---\n" + text,
                       "%TAG ! tag:x.org,2000:\n---\n" + text, "<<: *x\n" + text])  # fmt: skip


TEXT_EDITS = [
    t_number, t_alias_bomb, t_self_alias, t_tag, t_tabs, t_bom, t_control, t_newlines, t_deep, t_chars,
    t_truncate, t_documents,
]  # fmt: skip


def b_bad_utf8(rng: random.Random, raw: bytes) -> bytes:
    i = rng.randrange(len(raw) + 1)
    return raw[:i] + rng.choice(BAD_BYTES) + raw[i:]


def make_case(seed: int, i: int, files: dict[str, bytes], specs: list[str]) -> Case:
    """Case ``i`` of ``seed``: always the same edits of the same file."""
    rng = random.Random(f"netc-fuzz:{seed}:{i}")
    case = Case(rng, files, rng.choice(specs))
    spec_text = files[case.spec].decode()
    includes = [f for f in files if f.startswith("blocks/")] if "include:" in spec_text else []
    target = rng.choice(includes) if includes and rng.random() < 0.3 else case.spec
    raw = files[target]
    for _ in range(rng.randrange(1, 4)):
        kind = rng.random()
        if kind < 0.5:  # an edit of the document
            try:  # not after an alias bomb: walking its document would take for ever
                doc = None if b"&" in raw else yaml.load(raw.decode("utf-8"), Loader=_SafeLoader)
            except Exception:  # the mutator's own reading: any failure means "edit the text instead"
                doc = None
            if doc is None:
                continue
            for _ in range(5):
                edit = rng.choice(DOC_EDITS)
                try:
                    label = edit(rng, doc, case) if edit is d_include else edit(rng, doc)
                except RecursionError:  # the mutator's own copy of a document nested thousands deep
                    label = None
                if label:
                    case.edits.append(f"{target}: {label}")
                    break
            try:
                raw = _dump(doc).encode("utf-8", "surrogatepass")
            except Exception:  # a value PyYAML cannot write (a 5,000-digit int, deep nesting)
                continue
        elif kind < 0.95:  # an edit of the text
            edit = rng.choice(TEXT_EDITS)
            raw = edit(rng, raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
            case.edits.append(f"{target}: {edit.__name__}")
        else:
            raw = b_bad_utf8(rng, raw)
            case.edits.append(f"{target}: bad UTF-8")
    case.changed[target] = raw
    return case


FUZZ_CASES = int(os.environ.get("NETC_FUZZ_CASES", "2500"))
FUZZ_SEED = int(os.environ.get("NETC_FUZZ_SEED", "0"))
FUZZ_FIRST = int(os.environ.get("NETC_FUZZ_FIRST", "0"))
FUZZ_CHUNKS = 10
CASE_SECONDS = 2.0  # CPU seconds, so that other processes on the machine do not count


def _seed_files() -> dict[str, bytes]:
    out = {str(p.relative_to(EXAMPLES)): p.read_bytes() for p in sorted(EXAMPLES.rglob("*.yaml"))}
    for name, text in INLINE.items():
        out[f"inline_{name}.yaml"] = text.encode()
    return out


def run_case(case: Case, folder: Path) -> str | None:
    """Write the case into ``folder`` (a copy of examples/), run it; a failure as text, or None."""
    for name, raw in case.changed.items():
        (folder / name).write_bytes(raw)
    start = time.process_time()
    try:
        run_pipeline(folder / case.spec)
    except Exception:
        return traceback.format_exc(limit=-6)
    took = time.process_time() - start
    if took > CASE_SECONDS:
        return f"took {took:.1f} CPU seconds (at most {CASE_SECONDS})"
    return None


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], list[str]]:
    files = _seed_files()
    folder = tmp_path_factory.mktemp("fuzz")
    specs = sorted(f for f in files if not f.startswith("blocks/"))
    for name, raw in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
    for name in specs:  # every seed compiles as it is
        run_pipeline(folder / name)
        netc.load(folder / name).compile(batch=2)
    return folder, files, specs


@pytest.mark.parametrize("chunk", range(FUZZ_CHUNKS))
def test_seeded_mutants_of_every_example_compile_or_raise_spec_error(fuzz_folder, chunk):
    folder, files, specs = fuzz_folder
    per = -(-FUZZ_CASES // FUZZ_CHUNKS)
    failures = []
    for i in range(FUZZ_FIRST + chunk * per, FUZZ_FIRST + min(FUZZ_CASES, (chunk + 1) * per)):
        case = make_case(FUZZ_SEED, i, files, specs)
        why = run_case(case, folder)
        for name in case.changed:  # back to the pristine examples for the next case
            if name in files:
                (folder / name).write_bytes(files[name])
            else:
                (folder / name).unlink()
        if why:
            failures.append(f"case {i} (seed {FUZZ_SEED}) on {case.spec}: {'; '.join(case.edits)}\n{why}")
    assert not failures, (
        f"{len(failures)} failing case(s); rerun one with NETC_FUZZ_FIRST=i NETC_FUZZ_CASES=1\n"
        + "\n".join(failures[:5])
    )


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
