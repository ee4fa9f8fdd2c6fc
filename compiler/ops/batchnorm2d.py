"""batchnorm2d: batchnorm1d's rule per channel over N, H and W, as torch.nn.BatchNorm2d.

x: [N, C, H, W] → same shape; μ_c, σ²_c over N·H·W values; y = w_c · (x - μ_c) / sqrt(σ²_c + eps) + b_c.
Parameters, saved tensors and FLOPs as batchnorm1d: w, b [C] when affine; running_mean, running_var [C]
(not trainable); saved "mean" and "invstd" [C] (batchless); forward 7·n (+2·n affine), backward
10·n (+3·n affine).
"""

from __future__ import annotations

from .base import TensorType
from .batchnorm1d import Batchnorm1d


class Batchnorm2d(Batchnorm1d):
    name = "batchnorm2d"
    layout = ((3,), "[N, C, H, W]")
    folds_after = {"conv2d": 3}  # noqa: RUF012 (a class fact, never mutated)
    example = ({}, (TensorType((64, 16, 16)),))


OP = Batchnorm2d()
