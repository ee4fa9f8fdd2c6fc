"""spec/expand.py: blocks, repeat, arguments, nested blocks, sequence, include."""

import netc
from netc.spec.expand import expand
from netc.spec.load import load
from netc.spec.validate import validate

RES = """
netc: 1
inputs: {x: {shape: [4]}}
blocks:
  inner:
    args: {w: 4}
    input: x
    modules:
      l: {op: linear, in: x, out_features: $w}
  res:
    args: {w: 4, out: 4}
    input: x
    modules:
      l1: {block: inner, in: x, w: $w}
      r: {op: relu, in: l1}
      l2: {op: linear, in: r, out_features: $out}
    output: l2
modules:
  head: {op: linear, in: stage, out_features: 3}
  a: {op: linear, in: x, out_features: 4}
  stage: {block: res, in: a, repeat: 3, w: 8}
"""


def _expand(path):
    return expand(validate(load(path)))


def test_repeat_unrolls_with_readable_names_and_chains(spec_file):
    net = _expand(spec_file(RES))
    names = [m.name for m in net.modules]
    assert names[:2] == ["head", "a"]  # declaration order; the graph pass sorts
    assert "stage.1.l1.l" in names and "stage.3.l2" in names
    mods = {m.name: m for m in net.modules}
    assert mods["stage.1.l1.l"].inputs == ["a"]
    assert mods["stage.2.l1.l"].inputs == ["stage.1.l2"]  # repeat i+1 reads repeat i
    assert mods["head"].inputs == ["stage.3.l2"]  # the instance name means its output
    assert mods["stage.2.l1.l"].attrs["out_features"] == 8  # $w through two levels
    assert mods["stage.2.l1.l"].blocks == ("stage.2", "stage.2.l1")
    assert net.clusters["stage.2"] == "res" and net.clusters["stage.2.l1"] == "inner"


def test_block_defaults_and_single_instance_naming(spec_file):
    net = _expand(spec_file(RES.replace("repeat: 3, w: 8", "out: 4")))
    mods = {m.name: m for m in net.modules}
    assert mods["stage.l1.l"].attrs["out_features"] == 4  # default w
    assert mods["head"].inputs == ["stage.l2"]


def test_sequence_shorthand_names_and_chains(spec_file):
    p = spec_file(
        """
        netc: 1
        inputs: {x: {shape: [4]}}
        sequence:
          - {op: linear, out_features: 8}
          - {op: relu}
          - {op: linear, out_features: 2, name: logits}
        """
    )
    net = _expand(p)
    assert [(m.name, m.inputs) for m in net.modules] == [
        ("linear1", ["x"]),
        ("relu1", ["linear1"]),
        ("logits", ["relu1"]),
    ]


def test_include_brings_blocks(spec_file):
    spec_file(
        """
        netc: 1
        blocks:
          mlp:
            input: x
            modules:
              l: {op: linear, in: x, out_features: 5}
        """,
        "lib.yaml",
    )
    p = spec_file(
        """
        netc: 1
        include: lib.yaml
        inputs: {x: {shape: [4]}}
        modules:
          m: {block: mlp, in: x}
        """
    )
    plan = netc.load(p).compile(batch=1)
    assert [r.name for r in plan.modules] == ["m.l"]
    assert plan.modules[0].output_shape == [5]


def test_forward_references_are_sorted(spec_file):
    plan = netc.load(spec_file(RES)).compile(batch=1)
    order = [r.name for r in plan.modules]
    assert order.index("a") < order.index("stage.1.l1.l") < order.index("head")
    assert order[-1] == "head"
