"""Tied weights (`share:`, compiler/ties.py): counted once in the plan, its ledger, the summary and
the drawing; every bad share is a located error at the sharing module."""

import json
from importlib import resources

import jsonschema
import pytest
from tinyspec import TIED

import netc
from netc.compiler.plan import Plan
from netc.compiler.report.draw import to_dot
from netc.spec.errors import SpecError

# `share:` on a block instance: every module of `right` uses its namesake in `left`.
TWINS = """
netc: 1
inputs:
  a: {shape: [4]}
  b: {shape: [4]}
blocks:
  mlp:
    args: {d: 5}
    input: x
    modules:
      fc: {op: linear, in: x, out_features: $d}
      act: {op: relu, in: fc}
      out: {op: linear, in: act, out_features: 3}
modules:
  left: {block: mlp, in: a}
  right: {block: mlp, in: b, share: left}
  both: {op: concat, in: [left, right], axis: 0}
outputs: [both]
"""


def test_a_shared_parameter_is_counted_once(spec_file):
    plan = netc.load(spec_file(TIED)).compile(batch=4)
    assert [p.name for p in plan.params] == ["emb.w", "h.w", "h.b", "dec.b"]
    assert [(t.name, t.owner, t.grad_offset) for t in plan.ties] == [
        ("h2.w", "h.w", 0),
        ("h2.b", "h.b", 36),
        ("dec.w", "emb.w", 42),
    ]
    assert plan.total_params == plan.trainable_params == 66 + 42 + 11
    rows = {r.name: r.params for r in plan.modules}
    assert rows["h2"] == 0 and rows["dec"] == 11 and rows["emb"] == 66
    # the steps name the module's own parameters; the plan resolves them to the owner
    fwd = {s.module: s.params for s in plan.forward_steps}
    assert fwd["dec"] == ["dec.w", "dec.b"]
    assert plan.param_info("dec.w") is plan.params[0]
    assert {s.module for s in plan.backward_steps} >= {"h", "h2", "dec", "emb"}
    led = plan.memory["ledger"]
    assert led["params_bytes"] == led["grads_bytes"] == 119 * 4
    assert led["tied_grads_bytes"] == (36 + 6 + 66) * 4 == plan.tied_grad_elements * 4
    assert led["training_peak_bytes"] > led["params_bytes"] + led["grads_bytes"] + led["tied_grads_bytes"]
    text = plan.summary()
    assert "dec.w = emb.w" in text and "tied gradients" in text


def test_a_frozen_owner_gives_its_users_no_gradient_slot(spec_file):
    plan = netc.load(spec_file(TIED.replace("dim: 6}", "dim: 6, trainable: false}"))).compile(batch=2)
    tie = plan.tie("dec.w")
    assert tie is not None and tie.grad_offset is None
    assert plan.tied_grad_elements == 42 and plan.trainable_params == 53


def test_a_block_instance_shares_its_twin_module_by_module(spec_file):
    plan = netc.load(spec_file(TWINS)).compile(batch=2)
    assert {t.name: t.owner for t in plan.ties} == {
        "right.fc.w": "left.fc.w",
        "right.fc.b": "left.fc.b",
        "right.out.w": "left.out.w",
        "right.out.b": "left.out.b",
    }
    assert plan.total_params == 4 * 5 + 5 + 5 * 3 + 3


def test_a_chain_of_shares_resolves_to_its_root(spec_file):
    text = TIED.replace("  dec:", "  h3: {op: linear, in: h2, out_features: 6, share: h2}\n  dec:").replace(
        "dec: {op: linear, in: h2,", "dec: {op: linear, in: h3,"
    )
    plan = netc.load(spec_file(text)).compile(batch=2)
    assert plan.tie("h3.w").owner == "h.w" and plan.tie("h3.b").owner == "h.b"


def test_plan_json_round_trip_and_schema_with_ties(spec_file):
    plan = netc.load(spec_file(TIED)).compile(batch=2)
    schema = json.loads(resources.files("netc.schemas").joinpath("plan.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(plan.to_json()))
    assert Plan.from_json(plan.to_json()) == plan


def test_the_drawing_shows_each_tie(spec_file):
    dot = to_dot(netc.load(spec_file(TIED)).compile(batch=2))
    edges = [line for line in dot.splitlines() if 'style="dashed"' in line]
    assert len(edges) == 2
    assert any(e.strip().startswith('"h" -> "h2"') and "shares w, b" in e for e in edges)
    assert any(e.strip().startswith('"emb" -> "dec"') and "shares w " in e for e in edges)
    assert "shares w of emb" in dot  # on the user's node too


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        (
            "share: h}",
            "share: hh}",
            9,
            ["shares 'hh', which is not a module", "modules with parameters: emb, h, dec"],
        ),
        ("share: h}", "share: h2}", 9, ["module 'h2' (linear) shares itself"]),
        ("share: h}", "share: h, trainable: false}", 9, ["sets trainable: false (the owner has true)"]),
        ("share: h}", "share: h, lr_mult: 0.5}", 9, ["sets lr_mult: 0.5 (the owner has 1.0)"]),
        ("share: h}", "share: h, init: zeros}", 9, ["sets init: zeros (the owner has"]),
        ("share: h}", "share: emb}", 9, ["cannot share module 'emb' (embedding)", "same op", "{w: emb.w}"]),
        (
            "in: act, out_features: 6, share",
            "in: act, out_features: 5, share",
            9,
            ["cannot share module 'h': its w would be [5, 6] here, and 'h.w' is [6, 6]; its b would be [5]"],
        ),
        ("share: h}", "share: h, bias: false}", 9, ["its parameters are (w, b), this module's are (w)"]),
        ("{w: emb.w}", "{w: emb.v}", 10, ["module 'emb' (embedding) has no parameter 'v'"]),
        ("{w: emb.w}", "{v: emb.w}", 10, ["shares parameter 'v', which it does not have"]),
        ("{w: emb.w}", "{w: emb}", 10, ["write module.parameter"]),
        (
            "{w: emb.w}",
            "{b: emb.w}",
            10,
            ["cannot share 'emb.w': its b would be [11] here, and 'emb.w' is [11, 6]"],
        ),
        (
            "act: {op: tanh, in: h}",
            "act: {op: tanh, in: h, share: h}",
            8,
            ["shares 'h' but has no parameters"],
        ),
    ],
)
def test_bad_shares_are_located_at_the_sharing_module(spec_file, old, new, line, words):
    text = TIED.replace(old, new, 1)
    assert text != TIED
    with pytest.raises(SpecError) as e:
        netc.load(spec_file(text))
    # one error per bad share (a changed shape may break a reader downstream too)
    (d,) = [d for d in e.value.diagnostics if d.location is not None and d.location.line == line]
    assert d.pointer.endswith("/share")
    for w in words:
        assert w in str(d), str(d)


def test_a_cycle_of_shares_is_one_error(spec_file):
    text = TIED.replace(
        "h: {op: linear, in: emb, out_features: 6}", "h: {op: linear, in: emb, out_features: 6, share: h2}"
    )
    with pytest.raises(SpecError) as e:
        netc.load(spec_file(text))
    (d,) = e.value.diagnostics
    assert "module 'h' (linear) is in a cycle of shares: h → h2 → h" in d.message, d.message
    assert d.location.line == 7


def test_an_instance_sharing_another_block_is_located_at_its_share(spec_file):
    other = "  other:\n    input: x\n    modules:\n      fc: {op: linear, in: x, out_features: 2}\n"
    text = TWINS.replace("modules:\n  left:", other + "modules:\n  left:").replace(
        "left: {block: mlp, in: a}", "left: {block: other, in: a}"
    )
    with pytest.raises(SpecError) as e:
        netc.load(spec_file(text))
    msgs = [str(d) for d in e.value.diagnostics]
    assert any(
        "module 'right.fc' (linear) cannot share module 'left.fc'" in m and "instance 'right'" in m
        for m in msgs
    ), msgs
    assert any("'left.out', which is not a module" in m for m in msgs), msgs
    assert all(d.pointer == "/modules/right/share" for d in e.value.diagnostics)
