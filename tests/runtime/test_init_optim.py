"""Initializers follow their formulas; the optimizer and train_step match torch."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import netc
from netc.runtime.check import random_inputs
from netc.runtime.init import init_tensor

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("init", "low", "high", "std"),
    [
        ("kaiming_uniform", -np.sqrt(6 / 400), np.sqrt(6 / 400), np.sqrt(6 / 400 / 3)),
        ("xavier_uniform", -np.sqrt(6 / 600), np.sqrt(6 / 600), np.sqrt(6 / 600 / 3)),
        ("fan_in_uniform", -1 / np.sqrt(400), 1 / np.sqrt(400), 1 / np.sqrt(400 * 3)),
        ("kaiming_normal", -np.inf, np.inf, np.sqrt(2 / 400)),
        ("xavier_normal", -np.inf, np.inf, np.sqrt(2 / 600)),
        ("normal", -np.inf, np.inf, 1.0),
    ],
)
def test_initializer_ranges_and_spread(init, low, high, std):
    w = init_tensor(init, (200, 400), 400, 200, np.random.default_rng(0))
    assert low <= w.min() and w.max() <= high
    assert w.std() == pytest.approx(std, rel=0.02)
    assert abs(w.mean()) < 0.02 * std * 10


def test_init_is_seeded_and_overridable(spec_file):
    text = """
    netc: 1
    inputs: {x: {shape: [8]}}
    modules:
      a: {op: linear, in: x, out_features: 4}
      z: {op: linear, in: a, out_features: 4, init: zeros}
    """
    plan = netc.load(spec_file(text)).compile(2)
    m1, m2, m3 = netc.Model(plan, seed=1), netc.Model(plan, seed=1), netc.Model(plan, seed=2)
    p1, p2, p3 = m1.parameters(), m2.parameters(), m3.parameters()
    assert np.array_equal(p1["a.w"], p2["a.w"]) and not np.array_equal(p1["a.w"], p3["a.w"])
    assert not p1["z.w"].any() and not p1["z.b"].any()  # zeros weights, zero biases


MLP = """
netc: 1
inputs:
  x: {shape: [6]}
  label: {shape: [], dtype: int64}
modules:
  fc1: {op: linear, in: x, out_features: 5}
  act: {op: relu, in: fc1}
  logits: {op: linear, in: act, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
"""


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_train_step_matches_torch(optimizer, spec_file):
    plan = netc.load(spec_file(MLP)).compile(8, optimizer=optimizer)
    model = netc.Model(plan, dtype=np.float64)
    feed = random_inputs(plan, 8, seed=4)
    params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.parameters().items()}
    hyper = {"sgd": {"lr": 0.1}, "momentum": {"lr": 0.05, "momentum": 0.9}, "adam": {"lr": 0.01}}[optimizer]
    opt = (
        torch.optim.Adam(params.values(), **hyper)
        if optimizer == "adam"
        else torch.optim.SGD(params.values(), **hyper)
    )
    for _ in range(5):
        loss = model.train_step(feed, **hyper)
        opt.zero_grad()
        h = torch.relu(torch.tensor(feed["x"]) @ params["fc1.w"].T + params["fc1.b"])
        logits = h @ params["logits.w"].T + params["logits.b"]
        ref = torch.nn.functional.cross_entropy(logits, torch.tensor(feed["label"]))
        ref.backward()
        opt.step()
        assert loss == pytest.approx(ref.item(), rel=1e-12)
    for k, v in model.parameters().items():
        np.testing.assert_allclose(v, params[k].detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_only_the_kernels_a_plan_uses_are_imported():
    code = (
        "import sys, netc\n"
        f"m = netc.Model(netc.load({str(ROOT / 'examples' / 'xor_mlp.yaml')!r}).compile(4))\n"
        "loaded = {k.rsplit('.', 1)[1] for k in sys.modules if k.startswith('netc.runtime.kernels.')}\n"
        "assert 'conv2d' not in loaded and 'multi_head_attention' not in loaded, loaded\n"
        "assert {'linear', 'tanh', 'binary_cross_entropy'} <= loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
