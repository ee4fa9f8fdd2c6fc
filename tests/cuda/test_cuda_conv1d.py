"""The 1-d conv group's CUDA kernels (conv1d, maxpool1d, avgpool1d, global_maxpool: conv2d's and
the 2-d pools' kernels on [N, C, 1, L] views) equal their CPU kernels, forward and backward. One
small case each: the 2-d kernels themselves are covered by test_cuda_spatial.py."""

import numpy as np
import pytest
from helpers import Pair
from test_cuda_spatial import distinct

RNG = np.random.default_rng(12)


@pytest.mark.parametrize(
    ("attrs", "dtype", "acc"),
    [
        ({"out_channels": 4, "kernel": 3, "stride": 2, "padding": [2, 1], "groups": 2}, np.float32, True),
        (
            {"out_channels": 3, "kernel": 2, "padding": "same", "dilation": 2, "bias": False},
            np.float64,
            False,
        ),
    ],
)
def test_conv1d(attrs, dtype, acc):
    p = Pair("conv1d", attrs, [RNG.standard_normal((2, 2, 9))], acc=acc, dtype=dtype).run()
    p.compare(*((1e-5, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)))


@pytest.mark.parametrize("op", ["maxpool1d", "avgpool1d"])
def test_pool1d(op):
    p = Pair(op, {"kernel": 3, "stride": 2, "padding": 1}, [distinct((2, 3, 10))], acc=True).run()
    p.compare(1e-6, 1e-6)


def test_global_maxpool():
    p = Pair("global_maxpool", {}, [distinct((2, 3, 4, 5))], acc=True).run()
    p.compare(0, 0)
    np.testing.assert_array_equal(p.gpu_binding.saved["argmax"].copy_to_host(), p.cpu_binding.saved["argmax"])
