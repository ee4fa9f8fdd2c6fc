"""groupnorm's and instancenorm's CUDA kernels equal their CPU kernels, forward and backward, with
instancenorm's running statistics in training and evaluation. Shapes are tiny (the simulator runs
every GPU thread as a Python thread), and one row is wider than a block of threads."""

import numpy as np
import pytest
from helpers import Pair

RNG = np.random.default_rng(12)

TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}


def compare_state(p: Pair, rtol: float, atol: float) -> None:
    """Saved statistics and parameters (running statistics) agree too."""
    c, g = p.cpu_binding, p.gpu_binding
    for what, cpu, gpu in (("saved", c.saved, g.saved), ("param", c.p, g.p)):
        for k, v in cpu.items():
            np.testing.assert_allclose(gpu[k].copy_to_host(), v, rtol=rtol, atol=atol, err_msg=f"{what} {k}")


CASES = [
    # (op, attributes, input shape with batch, dtype, acc)
    ("groupnorm", {"num_groups": 2}, (2, 4, 3, 5), np.float32, False),
    ("groupnorm", {"num_groups": 1, "affine": False}, (3, 3, 4), np.float64, True),
    ("groupnorm", {"num_groups": 3}, (2, 6), np.float32, True),  # [N, C]
    ("groupnorm", {"num_groups": 2}, (2, 2, 300), np.float32, False),  # 300 values a row: > one block
    ("instancenorm", {"affine": True, "track_running_stats": True}, (3, 2, 4, 3), np.float32, True),
    ("instancenorm", {"track_running_stats": True, "momentum": 0.3}, (2, 3, 5), np.float64, False),
    ("instancenorm", {}, (2, 3, 6), np.float32, False),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("op", "attrs", "shape", "dtype", "acc"), CASES)
def test_group_norms(op, attrs, shape, dtype, acc, training):
    x = RNG.standard_normal(shape) * 2 + 0.5
    p = Pair(op, attrs, [x], acc=acc, dtype=dtype, training=training).run()
    rtol, atol = TOL[dtype]
    p.compare(rtol, atol)
    compare_state(p, rtol, atol)  # saved mean/invstd, running statistics (momentum, unbiased var)


def test_group_norm_parameter_gradients_without_dx():
    p = Pair("groupnorm", {"num_groups": 2}, [RNG.standard_normal((2, 4, 5))], need_dx=[False]).run()
    assert p.gpu_binding.dx == [None]
    p.compare(*TOL[np.float32])


def test_the_norms_in_a_network_on_the_cuda_executor_equal_the_cpu_executor(tmp_path):
    # real bindings (arena, parameter and workspace views), training then evaluation
    from tinyspec import NORM_NET

    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.executor import Executor
    from netc.runtime.executor_cuda import CudaExecutor

    (tmp_path / "net.yaml").write_text(NORM_NET)
    plan = netc.load(tmp_path / "net.yaml").compile(2)
    cpu = Executor(plan, 2, seed=2)
    gpu = CudaExecutor(plan, 2, seed=2)
    feed = random_inputs(plan, 2, seed=5)
    for training in (True, False):
        for ex in (cpu, gpu):
            ex.training = training
            ex.forward(feed)
            ex.backward()
        np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=1e-5)
        np.testing.assert_allclose(gpu.outputs()["logits"], cpu.outputs()["logits"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            gpu.sync_params_to_host(), cpu.params, rtol=1e-5, atol=1e-7
        )  # running stats
