"""compiler/fusion.py: which patterns fuse, which must not, inference plans, and their ledgers."""

import json
from importlib import resources

import jsonschema
import pytest
from tinyspec import chain_tail

import netc
from netc.compiler.fusion import fuse
from netc.compiler.plan import Plan

CHAIN = """
netc: 1
inputs:
  x: {shape: [3, 8, 8]}
  y: {shape: [], dtype: int64}
modules:
  c: {op: conv2d, in: x, out_channels: 4, kernel: 3, padding: 1}
  bn: {op: batchnorm2d, in: c}
  r: {op: relu, in: bn}
  c2: {op: conv2d, in: r, out_channels: 4, kernel: 3, padding: 1}
  sum: {op: add, in: [c2, r]}
  r2: {op: relu, in: sum}
  flat: {op: flatten, in: r2}
  fc: {op: linear, in: flat, out_features: 16}
  t: {op: tanh, in: fc}
  drop: {op: dropout, in: t, p: 0.5}
  logits: {op: linear, in: drop, out_features: 3}
  s: {op: sigmoid, in: logits}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [s]
"""


def _net(spec_file, text=CHAIN):
    return netc.load(spec_file(text))


def _pairs(plan):
    return [tuple(d["modules"]) for d in plan.fusion if d["kind"] == "epilogue"]


def test_producers_take_their_activation(spec_file):
    plan = _net(spec_file).compile(4)
    # batchnorm + relu, residual add + relu, linear + tanh; c and c2 are read by others (bn, sum).
    assert _pairs(plan) == [("bn", "r"), ("sum", "r2"), ("fc", "t")]
    steps = {s.module: s for s in plan.forward_steps}
    assert steps["bn"].epilogue == "r" and steps["r"].fused_into == "bn"
    assert plan.aliases == {"r": "bn", "r2": "sum", "t": "fc"}
    offs = plan.memory["training_offsets"]
    assert all(offs[a] == offs[p] for a, p in plan.aliases.items())


def test_what_must_not_fuse(spec_file):
    text = """
    netc: 1
    inputs:
      x: {shape: [6]}
      y: {shape: [], dtype: int64}
    modules:
      shared: {op: linear, in: x, out_features: 6}
      r1: {op: relu, in: shared}
      r2: {op: tanh, in: shared}
      kept: {op: linear, in: r1, out_features: 6}
      seen: {op: relu, in: kept}
      g: {op: linear, in: r2, out_features: 6}
      gel: {op: gelu, in: g}
      both: {op: add, in: [seen, gel]}
      logits: {op: linear, in: both, out_features: 3}
      act: {op: sigmoid, in: logits}
    losses:
      ce: {op: cross_entropy, in: [logits, y]}
    outputs: [kept, act]
    """
    plan = _net(spec_file, text).compile(2)
    # shared: two readers; kept: a network output; g + gelu: gelu's backward reads its input;
    # logits: a loss reads it. Nothing fuses.
    assert plan.fusion == [] and plan.aliases == {}


def test_the_pass_is_pure_and_can_be_turned_off(spec_file, monkeypatch):
    net = _net(spec_file)
    monkeypatch.setenv("NETC_FUSE", "0")
    plain = net.compile(4)
    assert plain.fusion == [] and all(s.epilogue is None for s in plain.steps)
    before = plain.to_json()
    fused = fuse(plain, "training")
    assert plain.to_json() == before  # the input plan is untouched
    assert _pairs(fused) == [("bn", "r"), ("sum", "r2"), ("fc", "t")]
    with pytest.raises(ValueError, match="unknown plan mode 'eval'"):
        fuse(plain, "eval")


def test_an_inference_plan_drops_dropout_and_backward(spec_file):
    plan = _net(spec_file).compile(4, mode="inference")
    assert plan.mode == "inference" and plan.backward_steps == []
    assert "drop" not in {s.module for s in plan.steps}
    assert plan.aliases["drop"] == "t"
    assert {"kind": "removed", "modules": ["drop"], "note": "identity in inference"} in plan.fusion
    led = plan.memory["ledger"]
    assert led["grads_bytes"] == led["optimizer_bytes"] == led["activations_bytes"] == 0
    assert led["training_arena_bytes"] == led["training_peak_bytes"] == 0
    parts = led["params_bytes"] + led["folded_params_bytes"] + led["inference_arena_bytes"]
    assert led["inference_peak_bytes"] == parts + led["workspace_bytes"]
    assert led["folded_params_bytes"] == (4 * 3 * 9 + 4) * 4  # bn folded into c
    # A training plan states the same inference figures as the inference plan.
    train = _net(spec_file).compile(4).memory["ledger"]
    assert train["inference_arena_bytes"] == led["inference_arena_bytes"]


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_fused_plans_are_valid_json_and_load_back(spec_file, mode):
    plan = _net(spec_file).compile(4, mode=mode)
    schema = json.loads(resources.files("netc.schemas").joinpath("plan.schema.json").read_text())
    jsonschema.validate(plan.to_dict(), schema)
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize("name", ["lenet5", "digits_mlp", "resnet_mini", "vgg16"])
def test_fusion_shrinks_the_inference_arena_of_the_examples(name):
    from pathlib import Path

    net = netc.load(Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml")
    fused = net.compile(8, mode="inference").memory["ledger"]["inference_arena_bytes"]
    plain = net.compile(8, mode="inference", fuse=False).memory["ledger"]["inference_arena_bytes"]
    assert fused <= plain
    if name in ("lenet5", "digits_mlp"):
        assert fused < plain


def test_netc_compile_says_what_runs_fused(spec_file, capsys):
    from netc.cli import main

    path = spec_file(CHAIN)
    assert main(["compile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fc (linear) + t (tanh): one step, t in fc's output buffer" in out
    assert main(["compile", str(path), "--inference"]) == 0
    out = capsys.readouterr().out
    assert "drop (dropout): removed, identity in inference" in out
    assert "  gradients " not in out and "inference plan (no gradients" in out


def test_batchnorm_folds_only_in_inference_and_only_where_it_can(spec_file):
    text = """
    netc: 1
    inputs:
      x: {shape: [2, 6, 6]}
      s: {shape: [4, 5]}
      y: {shape: [], dtype: int64}
    modules:
      c: {op: conv2d, in: x, out_channels: 3, kernel: 3}
      bn: {op: batchnorm2d, in: c}
      c2: {op: conv2d, in: x, out_channels: 3, kernel: 3}
      bn2: {op: batchnorm2d, in: c2}
      other: {op: relu, in: c2}
      seq: {op: linear, in: s, out_features: 5}
      bnseq: {op: batchnorm1d, in: seq}
      f1: {op: flatten, in: bn}
      f2: {op: flatten, in: bn2}
      f3: {op: flatten, in: other}
      f4: {op: flatten, in: bnseq}
      all: {op: concat, in: [f1, f2, f3, f4], axis: 0}
      logits: {op: linear, in: all, out_features: 3}
    losses:
      ce: {op: cross_entropy, in: [logits, y]}
    outputs: [logits]
    """
    net = netc.load(spec_file(text))
    # Training-mode batchnorm normalises with batch statistics: never folded.
    assert not [d for d in net.compile(2).fusion if d["kind"] == "folded"]
    plan = net.compile(2, mode="inference")
    # c2 has a second reader (other); bnseq normalises axis 0 of [4, 5], not the linear's axis.
    assert [d["modules"] for d in plan.fusion if d["kind"] == "folded"] == [["c", "bn"]]
    bn = next(s for s in plan.steps if s.module == "bn")
    assert bn.fused_into == "c" and plan.aliases["bn"] == "c"
    assert plan.memory["ledger"]["folded_params_bytes"] == (3 * 2 * 9 + 3) * 4
    assert net.compile(2, mode="inference", fuse=False).memory["ledger"]["folded_params_bytes"] == 0


WIDE = """
netc: 1
inputs:
  x: {shape: [6]}
  y: {shape: [], dtype: int64}
modules:
  fc: {op: linear, in: x, out_features: 8}
  g: {op: gelu, in: fc}
  fc2: {op: linear, in: g, out_features: 8}
  e: {op: elu, in: fc2, alpha: 0.5}
  ln: {op: layernorm, in: e}
  l: {op: leaky_relu, in: ln, negative_slope: 0.1}
  fc3: {op: linear, in: l, out_features: 8}
  sm: {op: softmax, in: fc3}
  shared: {op: linear, in: sm, out_features: 8}
  g2: {op: gelu, in: shared}
  t2: {op: tanh, in: shared}
  both: {op: add, in: [g2, t2]}
  logits: {op: linear, in: both, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, y]}
outputs: [logits]
"""


def test_inference_plans_fuse_every_pointwise_activation(spec_file):
    from netc.compiler.fusion import fusable_activation

    net = _net(spec_file, WIDE)
    # Training: gelu, elu and leaky_relu read their input in backward, which the producer's buffer
    # no longer holds; softmax reads only its output. shared has two readers: never.
    assert _pairs(net.compile(2)) == [("fc3", "sm")]
    plan = net.compile(2, mode="inference")
    assert _pairs(plan) == [("fc", "g"), ("fc2", "e"), ("ln", "l"), ("fc3", "sm")]
    assert plan.aliases == {"g": "fc", "e": "fc2", "l": "ln", "sm": "fc3"}
    steps = {s.module: s for s in plan.steps}
    # the decision by mode, per step: pointwise activations without parameters
    assert [m for m in steps if fusable_activation(steps[m], "training")] == ["sm", "t2"]
    wide = [m for m in steps if fusable_activation(steps[m], "inference")]
    assert wide == ["g", "e", "l", "sm", "g2", "t2"]
    assert not fusable_activation(steps["both"], "inference")
    plain = net.compile(2, mode="inference", fuse=False).memory["ledger"]["inference_arena_bytes"]
    assert plan.memory["ledger"]["inference_arena_bytes"] <= plain


CHAINS = """
netc: 1
inputs:
  x: {shape: [2, 4, 4]}
  y: {shape: [], dtype: int64}
modules:
  flat: {op: flatten, in: x}
  t0: {op: tanh, in: flat}
  r0: {op: relu, in: t0}
""" + chain_tail("r0", 64, "sr")


def test_inference_chains_pointwise_activations_into_one_step(spec_file):
    net = _net(spec_file, CHAINS)
    plan = net.compile(4, mode="inference")
    # fc -> t -> r -> g: three activations in linear's loop (MAX_CHAIN); e -> l: the rest, headed
    # by e's own loop; t0 -> r0 and s -> sr: no fusable producer (flatten; logits feeds the loss),
    # so the first activation heads the chain.
    assert plan.fusion == [
        {"kind": "epilogue", "modules": ["t0", "r0"], "note": ""},
        {"kind": "chain", "modules": ["fc", "t", "r", "g"], "note": "one loop"},
        {"kind": "epilogue", "modules": ["e", "l"], "note": ""},
        {"kind": "epilogue", "modules": ["s", "sr"], "note": ""},
    ]
    steps = {s.module: s for s in plan.forward_steps}
    assert steps["fc"].epilogue == "t" and steps["fc"].chain == ["r", "g"]
    assert {steps[a].fused_into for a in ("t", "r", "g")} == {"fc"}
    assert plan.aliases == {"r0": "t0", "t": "fc", "r": "fc", "g": "fc", "l": "e", "sr": "s"}
    offs = plan.memory["inference_offsets"]
    assert all(offs[a] == offs[root] for a, root in plan.aliases.items())
    # laid out once: the unfused plan holds fc's and t's outputs at once, the fused one fc's alone
    wide = """
    netc: 1
    inputs:
      x: {shape: [8]}
    modules:
      fc: {op: linear, in: x, out_features: 64}
      t: {op: tanh, in: fc}
      r: {op: relu, in: t}
      g: {op: gelu, in: r}
      out: {op: linear, in: g, out_features: 3}
    outputs: [out]
    """
    small = _net(spec_file, wide)
    fused = small.compile(4, mode="inference").memory["ledger"]["inference_arena_bytes"]
    plain = small.compile(4, mode="inference", fuse=False).memory["ledger"]["inference_arena_bytes"]
    assert fused < plain  # 1216 against 2176 bytes
    schema = json.loads(resources.files("netc.schemas").joinpath("plan.schema.json").read_text())
    jsonschema.validate(plan.to_dict(), schema)
    assert Plan.from_json(plan.to_json()) == plan


def test_training_plans_never_chain(spec_file):
    # relu's backward reads relu's output: a tanh after it in the same buffer would overwrite it
    plan = _net(spec_file, CHAINS).compile(4)
    assert plan.fusion == [{"kind": "epilogue", "modules": ["fc", "t"], "note": ""}]
    assert all(not s.chain for s in plan.steps)


def test_a_chain_stops_at_a_shared_or_pinned_tensor(spec_file):
    text = """
    netc: 1
    inputs:
      x: {shape: [6]}
    modules:
      fc: {op: linear, in: x, out_features: 6}
      t: {op: tanh, in: fc}
      r: {op: relu, in: t}
      s: {op: sigmoid, in: r}
      fc2: {op: linear, in: x, out_features: 6}
      t2: {op: tanh, in: fc2}
      r2: {op: relu, in: t2}
      s2: {op: sigmoid, in: t2}
      both: {op: add, in: [s, r2, s2]}
    outputs: [r, both]
    """
    plan = _net(spec_file, text).compile(2, mode="inference")
    # r is a network output: the chain ends there (s heads a chain of one, with nothing after);
    # t2 has two readers: it ends fc2's chain
    assert plan.fusion == [
        {"kind": "chain", "modules": ["fc", "t", "r"], "note": "one loop"},
        {"kind": "epilogue", "modules": ["fc2", "t2"], "note": ""},
    ]
    out = _summary(plan)
    assert (
        "fc (linear) -> t (tanh) -> r (relu): one step, the chain in one loop over fc's output buffer" in out
    )


def _summary(plan):
    from netc.compiler.report.summary import fusion_lines

    return "\n".join(fusion_lines(plan))
