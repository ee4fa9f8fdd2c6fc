"""The decoder's CUDA kernels equal their CPU kernels, forward and backward: conv_transpose2d
(conv2d's kernels on the mirror convolution, with a bias, an accumulated dx through the stage)
and upsample (nearest and bilinear, one pair of kernels). Tiny shapes: the simulator is slow."""

import numpy as np
import pytest
from helpers import Pair

RNG = np.random.default_rng(13)


@pytest.mark.parametrize(
    ("attrs", "dtype", "acc"),
    [
        (
            {"out_channels": 4, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
            np.float32,
            True,
        ),
        ({"out_channels": 3, "kernel": 2, "stride": 2, "bias": False}, np.float64, False),
        ({"out_channels": 3, "kernel": 1}, np.float32, True),  # 1x1: the mirror multiplies in place
    ],
)
def test_conv_transpose2d(attrs, dtype, acc):
    p = Pair("conv_transpose2d", attrs, [RNG.standard_normal((2, 2, 3, 3))], acc=acc, dtype=dtype).run()
    p.compare(*((1e-5, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)))


@pytest.mark.parametrize(
    ("attrs", "acc"),
    [
        ({"scale_factor": [2, 1.5]}, True),
        ({"mode": "bilinear", "size": [5, 4], "align_corners": True}, False),
        ({"mode": "bilinear", "scale_factor": 1.7}, True),
    ],
)
def test_upsample(attrs, acc):
    p = Pair("upsample", attrs, [RNG.standard_normal((2, 2, 3, 3))], acc=acc).run()
    p.compare(1e-6, 1e-6)
