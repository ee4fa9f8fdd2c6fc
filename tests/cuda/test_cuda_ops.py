"""The exemplar ops' CUDA kernels (relu, linear, cross_entropy) equal their CPU kernels."""

import numpy as np
import pytest
from helpers import Pair

RNG = np.random.default_rng(3)

TOL = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.mark.parametrize("acc", [False, True])
def test_relu(acc):
    x = RNG.standard_normal((5, 3, 7))
    x[0, 0, :3] = 0.0  # the kink: gradient 0 at 0, as on the CPU
    Pair("relu", {}, [x], acc=acc).run().compare(rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("acc", [False, True])
def test_linear(dtype, acc):
    # 3-d input: every leading axis is a row of the GEMM
    x = RNG.standard_normal((2, 9, 17))
    Pair("linear", {"out_features": 18}, [x], acc=acc, dtype=dtype).run().compare(rtol=TOL[dtype], atol=1e-6)


def test_linear_without_bias_and_without_input_gradient():
    x = RNG.standard_normal((5, 6))
    p = Pair("linear", {"out_features": 3, "bias": False}, [x], need_dx=[False]).run()
    assert p.gpu_binding.dx == [None] and "b" not in p.gpu_binding.p
    p.compare(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("attrs", "dtype", "acc"),
    [
        ({}, np.float32, False),
        ({"label_smoothing": 0.2, "reduction": "sum"}, np.float64, True),
        ({"label_smoothing": 0.1}, np.float32, True),
    ],
)
def test_cross_entropy(attrs, dtype, acc):
    # [N, positions, C] logits: every position is a row; 37 classes exceed one warp of threads
    x = RNG.standard_normal((3, 2, 37)) * 3
    labels = RNG.integers(0, 37, (3, 2))
    p = Pair("cross_entropy", attrs, [x, labels], acc=acc, dtype=dtype, weight=0.7).run()
    p.compare(rtol=TOL[dtype], atol=1e-7)


def test_cross_entropy_bad_label_gives_nan_and_its_check_raises():
    p = Pair("cross_entropy", {}, [RNG.standard_normal((4, 3)), np.array([0, 2, 3, 1])])
    p.gpu[0]()  # the CPU kernel would raise; the device one cannot
    assert np.isnan(p.gpu_binding.y.copy_to_host()[0])
    (check,) = p.gpu_binding.checks
    with pytest.raises(ValueError, match=r"cross_entropy 'cross_entropy': label 3 out of range \[0, 3\)"):
        check()
