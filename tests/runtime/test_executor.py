"""runtime/executor.py: exact allocation, determinism, modes, fan-out sums."""

import numpy as np
import pytest
from harness import REPO as ROOT
from harness import SMALL_EXAMPLES as SMALL

import netc
from netc.runtime.check import random_inputs
from netc.runtime.executor import Executor


@pytest.mark.parametrize("name", [*SMALL, "charcnn", "mobilenet_v2_mini", "resnet18", "alexnet", "vgg16"])
@pytest.mark.parametrize("batch", [1, 3])
def test_allocation_equals_the_ledger(name, batch):
    plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(batch)
    if name in ("alexnet", "vgg16", "resnet18") and batch == 3:
        batch = 2  # keeps the big arenas small; still a second batch size
        plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(batch)
    ex = Executor(plan, batch, optimizer=plan.optimizer)
    assert ex.allocated_bytes == plan.memory["ledger"]["training_peak_bytes"]


@pytest.mark.parametrize("name", SMALL)
def test_same_seed_same_bits(name):
    plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(4)
    runs = []
    for _ in range(2):
        ex = Executor(plan, 4, seed=3)
        ex.forward(random_inputs(plan, 4, seed=5))
        ex.backward()
        runs.append((ex.loss(), ex.grads.copy(), ex.params.copy()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1]) and np.array_equal(runs[0][2], runs[1][2])


def test_fan_out_gradient_is_the_sum_of_consumers(spec_file):
    # y = a + relu(a) + tanh(a) reads `a` three times: compare with torch.
    import torch

    text = """
    netc: 1
    inputs:
      x: {shape: [5]}
      t: {shape: [3]}
    modules:
      a: {op: linear, in: x, out_features: 3}
      r: {op: relu, in: a}
      h: {op: tanh, in: a}
      s: {op: add, in: [a, r, h]}
    losses:
      l: {op: mse, in: [s, t]}
    """
    plan = netc.load(spec_file(text)).compile(4)
    ex = Executor(plan, 4, dtype=np.float64, seed=1)
    feed = random_inputs(plan, 4, seed=2)
    ex.forward(feed)
    ex.backward()
    w = torch.tensor(ex.param("a.w"), requires_grad=True)
    b = torch.tensor(ex.param("a.b"), requires_grad=True)
    a = torch.tensor(feed["x"]) @ w.T + b
    loss = torch.nn.functional.mse_loss(a + torch.relu(a) + torch.tanh(a), torch.tensor(feed["t"]))
    loss.backward()
    assert ex.loss() == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(ex.grad("a.w"), w.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ex.grad("a.b"), b.grad.numpy(), rtol=1e-10)


def test_predict_handles_any_count_in_eval_mode():
    plan = netc.load(ROOT / "examples" / "digits_mlp.yaml").compile(8)
    model = netc.Model(plan)
    x = np.random.default_rng(0).standard_normal((19, 64)).astype(np.float32)
    out = model.predict({"x": x})["logits"]
    assert out.shape == (19, 10)
    one = model.predict({"x": x[5:6]})["logits"]
    np.testing.assert_allclose(one[0], out[5], rtol=1e-6)  # eval mode: dropout off, rows independent


def test_save_and_load_weights_round_trip(tmp_path):
    plan = netc.load(ROOT / "examples" / "lenet5.yaml").compile(2)
    a, b = netc.Model(plan, seed=1), netc.Model(plan, seed=2)
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    for k, v in a.parameters().items():
        assert np.array_equal(v, b.parameters()[k])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(netc.model.WeightsError, match="cannot read weights"):
        b.load_weights(tmp_path / "bad.npz")


def test_workqueue_threading_layer_even_if_numba_was_imported_first():
    # OpenMP workers busy-wait between parallel loops and take the cores OpenBLAS's threads need.
    import subprocess
    import sys

    code = (
        "import numba, numpy as np, netc\n"
        f"m = netc.Model(netc.load({str(ROOT / 'examples' / 'lenet5.yaml')!r}).compile(4))\n"
        "m.predict({'image': np.zeros((4, 1, 28, 28), np.float32)})\n"
        "assert numba.threading_layer() == 'workqueue', numba.threading_layer()\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_THREADING_LAYER"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("name", ["transformer_encoder", "lenet5"])
def test_same_bits_across_processes(name):
    import subprocess
    import sys

    code = (
        "import hashlib, netc\n"
        "from netc.runtime.executor import Executor\n"
        "from netc.runtime.check import random_inputs\n"
        f"plan = netc.load({str(ROOT / 'examples' / f'{name}.yaml')!r}).compile(8)\n"
        "ex = Executor(plan, 8, seed=3)\n"
        "ex.forward(random_inputs(plan, 8, seed=5)); ex.backward()\n"
        "print(hashlib.sha1(ex.grads.tobytes() + ex.params.tobytes()).hexdigest(), repr(ex.loss()))\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        for _ in "ab"
    }
    assert len(outs) == 1, outs


@pytest.mark.parametrize(
    ("name", "threads"), [("digits_mlp", True), ("lenet5", False), ("resnet_mini", False)]
)
def test_blas_keeps_its_threads_only_in_plans_without_numba_parallel_kernels(name, threads):
    # OpenBLAS's spinning threads starve a numba-parallel conv or pool that follows a GEMM.
    plan = netc.load(ROOT / "examples" / f"{name}.yaml").compile(2)
    ex = Executor(plan, 2)
    assert {b.blas_threads for b in ex._bindings} == {threads}
