"""Tied weights on the (simulated) GPU: each use writes its own gradient slot and the last backward
step adds them into the owner's (runtime/tied.py), as on the CPU."""

import numpy as np

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor
from netc.runtime.executor_cuda import CudaExecutor

# h2 uses h's weight and bias; dec's weight is the embedding table (tied input/output embedding).
NET = """
netc: 1
inputs:
  tok: {shape: [3], dtype: int64}
  label: {shape: [3], dtype: int64}
modules:
  emb: {op: embedding, in: tok, num_embeddings: 7, dim: 4}
  h: {op: linear, in: emb, out_features: 4}
  h2: {op: linear, in: h, out_features: 4, share: h}
  dec: {op: linear, in: h2, out_features: 7, share: {w: emb.w}}
losses:
  ce: {op: cross_entropy, in: [dec, label]}
"""


def test_shared_gradients_on_the_device_equal_the_cpu(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    plan = netc.load(tmp_path / "net.yaml").compile(2)
    cpu = Executor(plan, 2, dtype=np.float64, seed=4)
    gpu = CudaExecutor(plan, 2, dtype=np.float64, seed=4)
    assert gpu.allocated_bytes == cpu.allocated_bytes == gpu.plan.memory["ledger"]["training_peak_bytes"]
    assert gpu.tied_grads.size == cpu.tied_grads.size == 16 + 4 + 28
    feed = random_inputs(plan, 2, seed=6)
    for _ in range(2):  # twice: the sums must not pile up from one step to the next
        for ex in (cpu, gpu):
            ex.forward(feed)
            ex.backward()
    np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=1e-10)
    for name in ("emb.w", "h.w", "h.b", "dec.b", "dec.w", "h2.w"):
        np.testing.assert_allclose(gpu.grad(name), cpu.grad(name), rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=1e-10, atol=1e-13)
