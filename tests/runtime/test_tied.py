"""Tied weights at run time (runtime/tied.py): a shared parameter's gradient is the sum over its
users (PyTorch with one module used twice; float64 finite differences), the optimizer moves it
once, checkpoints hold it once, whole-step code runs it bit for bit like the per-op replay, and an
inference plan folds batchnorm into a shared convolution's own copy."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tinyspec import TIED

import netc
from netc.runtime.check import gradcheck, random_inputs
from netc.runtime.checkpoint import (
    read_safetensors,
    restore_training_tensors,
    training_tensors,
    write_safetensors,
)
from netc.runtime.executor import Executor
from netc.runtime.optim import Optimizer, segments
from netc.runtime.store.records import Checkpoint

# Two convolutions with one weight, each followed by its own batchnorm (folded in inference).
CONVS = """
netc: 1
inputs:
  image: {shape: [2, 5, 5]}
  label: {shape: [], dtype: int64}
modules:
  c1: {op: conv2d, in: image, out_channels: 2, kernel: 3, padding: 1}
  bn1: {op: batchnorm2d, in: c1}
  c2: {op: conv2d, in: bn1, out_channels: 2, kernel: 3, padding: 1, share: c1}
  bn2: {op: batchnorm2d, in: c2}
  pool: {op: global_avgpool, in: bn2}
  logits: {op: linear, in: pool, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
"""


@pytest.fixture
def tied(spec_file):
    return netc.load(spec_file(TIED)).compile(batch=4)


def _torch_tied(p: dict[str, torch.Tensor], tok: np.ndarray, label: np.ndarray) -> torch.Tensor:
    """The twin: nn.Linear h applied twice, the decoder as F.linear on the embedding's table."""
    e = p["emb.w"][torch.from_numpy(tok)]
    h = torch.tanh(F.linear(e, p["h.w"], p["h.b"]))
    h2 = F.linear(h, p["h.w"], p["h.b"])
    logits = F.linear(h2, p["emb.w"], p["dec.b"])
    return F.cross_entropy(logits.reshape(-1, 11), torch.from_numpy(label).reshape(-1))


def test_shared_gradients_are_the_sum_over_users_as_in_torch(tied):
    ex = Executor(tied, 4, dtype=np.float64, seed=1)
    feed = random_inputs(tied, 4, seed=2)
    ex.forward(feed)
    ex.backward()
    params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in ex.parameters().items()}
    assert set(params) == {"emb.w", "h.w", "h.b", "dec.b"}
    loss = _torch_tied(params, feed["tok"], feed["label"])
    loss.backward()
    np.testing.assert_allclose(ex.loss(), loss.item(), rtol=1e-12)
    for k, t in params.items():
        np.testing.assert_allclose(ex.grad(k), t.grad.numpy(), rtol=1e-9, atol=1e-14, err_msg=k)
    # the sum really has two parts: each use's own slot holds its share
    own = np.array(ex.grad("dec.w"))
    assert np.abs(own).max() > 0 and not np.allclose(own, ex.grad("emb.w"))


def test_finite_differences_agree_with_the_summed_gradients(tied):
    rows = gradcheck(tied, batch=3, samples=8, inputs="none")
    assert {r.name for r in rows} == {"emb.w", "h.w", "h.b", "dec.b"}
    assert all(r.checked > 0 and r.max_rel_error < 1e-4 for r in rows), rows


def test_one_optimizer_step_moves_the_shared_parameter_once(tied):
    ex = Executor(tied, 4, dtype=np.float64, seed=1)
    segs = segments(tied)
    assert len(segs) == len(tied.params) == 4
    before = {k: v.copy() for k, v in ex.parameters().items()}
    ex.forward(random_inputs(tied, 4, seed=2))
    ex.backward()
    grads = {k: ex.grad(k).copy() for k in before}
    Optimizer("sgd", ex.params, ex.grads, segs, lr=0.5).step()
    for k, v in before.items():
        np.testing.assert_allclose(ex.param(k), v - 0.5 * grads[k], rtol=1e-12)
    assert ex.param("dec.w") is not None and np.shares_memory(ex.param("dec.w"), ex.param("emb.w"))


def test_checkpoints_hold_a_shared_parameter_once_and_restore_it(tied, tmp_path):
    a = Executor(tied, 4, dtype=np.float32, seed=1)
    feed = random_inputs(tied, 4, seed=2)
    tensors = training_tensors(tied, a.params, a.opt_state)
    assert sorted(tensors) == ["dec.b", "emb.w", "h.b", "h.w"]  # sgd: no optimizer state
    write_safetensors(tmp_path / "w.safetensors", tensors)
    b = Executor(tied, 4, dtype=np.float32, seed=9)
    assert not np.array_equal(b.params, a.params)
    loaded, _ = read_safetensors(tmp_path / "w.safetensors")
    restore_training_tensors(Checkpoint(path=tmp_path, tensors=loaded, meta={}), tied, b.params)
    for ex in (a, b):
        ex.forward(feed)
    assert a.losses() == b.losses()


def test_whole_step_equals_the_per_op_replay_bitwise(tied, monkeypatch):
    monkeypatch.setenv("NETC_WHOLE_STEP", "0")
    a = Executor(tied, 4, seed=3)
    monkeypatch.setenv("NETC_WHOLE_STEP", "sync")
    b = Executor(tied, 4, seed=3)
    assert b._whole is not None, b.whole_step_reason
    feed = random_inputs(tied, 4, seed=5)
    for ex in (a, b):
        ex.set_inputs(feed)
        ex.step()
    assert a.losses() == b.losses()
    assert np.array_equal(a.grads, b.grads) and np.array_equal(a.tied_grads, b.tied_grads)
    assert np.abs(a.grads).max() > 0


def test_inference_folds_batchnorm_into_a_shared_convs_own_copy(spec_file):
    net = netc.load(spec_file(CONVS))
    train = Executor(net.compile(3), 3, dtype=np.float64, seed=1)
    plan = net.compile(3, mode="inference")
    assert [s.fold for s in plan.forward_steps if s.fold] == ["bn1", "bn2"]
    inf = Executor(plan, 3, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    for ex in (train, inf):  # running statistics away from 0 and 1, so the folds differ
        for name in ("bn1.running_mean", "bn2.running_mean", "bn1.running_var", "bn2.running_var"):
            ex.param(name)[...] = np.random.default_rng(len(name) + int(name[2])).uniform(0.5, 1.5, 2)
    feed = {"image": rng.standard_normal((3, 2, 5, 5))}
    train.training = False
    train.forward(feed)
    inf.forward(feed)
    np.testing.assert_allclose(inf.outputs()["logits"], train.outputs()["logits"], rtol=1e-12)
    # the shared weight itself is untouched: each fold writes its own copy
    np.testing.assert_array_equal(inf.param("c2.w"), train.param("c1.w"))


def test_an_owner_off_the_loss_path_gets_its_users_gradient_every_step(spec_file):
    # enc is only an output, so no kernel writes its gradient: the tie's sum copies, never piles up
    text = """
    netc: 1
    inputs:
      x: {shape: [4]}
      label: {shape: [], dtype: int64}
    modules:
      enc: {op: linear, in: x, out_features: 3}
      enc2: {op: linear, in: x, out_features: 3, share: enc}
    losses:
      ce: {op: cross_entropy, in: [enc2, label]}
    outputs: [enc, enc2]
    """
    plan = netc.load(spec_file(text)).compile(batch=3)
    assert "enc" not in {s.module for s in plan.backward_steps}
    ex = Executor(plan, 3, dtype=np.float64, seed=1)
    feed = random_inputs(plan, 3, seed=2)
    w, b = (torch.tensor(ex.param(k).copy(), requires_grad=True) for k in ("enc.w", "enc.b"))
    F.cross_entropy(F.linear(torch.from_numpy(feed["x"]), w, b), torch.from_numpy(feed["label"])).backward()
    for _ in range(2):
        ex.forward(feed)
        ex.backward()
        np.testing.assert_allclose(ex.grad("enc.w"), w.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(ex.grad("enc.b"), b.grad.numpy(), rtol=1e-12)
