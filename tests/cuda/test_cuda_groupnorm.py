"""groupnorm's and instancenorm's CUDA kernels equal their CPU kernels, forward and backward, with
instancenorm's running statistics in training and evaluation. Shapes are tiny (the simulator runs
every GPU thread as a Python thread), and one row is wider than a block of threads."""

import numpy as np
import pytest
from helpers import Pair, executors_agree
from tinyspec import NORM_NET

RNG = np.random.default_rng(12)

TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}


CASES = [
    # (op, attributes, input shape with batch, dtype, acc, training)
    ("groupnorm", {"num_groups": 2}, (2, 4, 3, 5), np.float32, False, True),
    ("groupnorm", {"num_groups": 1, "affine": False}, (3, 3, 4), np.float64, True, False),
    ("groupnorm", {"num_groups": 3}, (2, 6), np.float32, True, True),  # [N, C]
    ("groupnorm", {"num_groups": 2}, (2, 2, 300), np.float32, False, True),  # 300 values a row: > a block
    # instancenorm with running statistics in both modes (groupnorm computes the same in both)
    ("instancenorm", {"affine": True, "track_running_stats": True}, (3, 2, 4, 3), np.float32, True, True),
    ("instancenorm", {"affine": True, "track_running_stats": True}, (3, 2, 4, 3), np.float32, True, False),
    ("instancenorm", {"track_running_stats": True, "momentum": 0.3}, (2, 3, 5), np.float64, False, True),
    ("instancenorm", {"track_running_stats": True, "momentum": 0.3}, (2, 3, 5), np.float64, False, False),
    ("instancenorm", {}, (2, 3, 6), np.float32, False, False),
]


@pytest.mark.parametrize(("op", "attrs", "shape", "dtype", "acc", "training"), CASES)
def test_group_norms(op, attrs, shape, dtype, acc, training):
    x = RNG.standard_normal(shape) * 2 + 0.5
    p = Pair(op, attrs, [x], acc=acc, dtype=dtype, training=training).run()
    rtol, atol = TOL[dtype]
    p.compare(rtol, atol)
    p.compare_state(rtol, atol)  # saved mean/invstd, running statistics (momentum, unbiased var)


def test_group_norm_parameter_gradients_without_dx():
    p = Pair("groupnorm", {"num_groups": 2}, [RNG.standard_normal((2, 4, 5))], need_dx=[False]).run()
    assert p.gpu_binding.dx == [None]
    p.compare(*TOL[np.float32])


def test_the_norms_in_a_network_on_the_cuda_executor_equal_the_cpu_executor(tmp_path):
    (tmp_path / "net.yaml").write_text(NORM_NET)
    executors_agree(tmp_path / "net.yaml", 2, ["logits"], modes=(True, False))
