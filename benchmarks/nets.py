"""The benchmark's nets and kernels, their targets, and the PyTorch twin of each net.

Shared by benchmarks/throughput.py (driver and workers) and benchmarks/report.py (the tables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREADS = 2
LR, MOMENTUM = 0.01, 0.9


@dataclass(frozen=True)
class Net:
    spec: Path
    batches: tuple[int, ...]
    target: float  # netc/torch-eager samples/s ratio to reach in the training step (inference: 1.0)
    samples: int  # samples per timed repeat of a training step (inference: 3x)
    gpu_target: float  # the same ratio on a GPU, for the training step
    compile_target: float | None = None  # netc/torch.compile, training and inference (None: no target)
    cold_start: float | None = None  # seconds, load -> first training step with an empty kernel cache
    warm_start: float | None = None  # the same with the cache a first process filled


NETS = {
    "mlp": Net(HERE / "specs" / "mlp.yaml", (64, 256), 1.5, 24_000, 1.0, 1.0),
    "lenet5": Net(ROOT / "examples" / "lenet5.yaml", (64, 256), 1.0, 4_096, 1.0, 1.0),
    "resnet_mini": Net(HERE / "specs" / "resnet_mini.yaml", (64,), 1.0, 384, 0.5, None, 10.0, 1.0),
    "transformer_layer": Net(HERE / "specs" / "transformer_layer.yaml", (32,), 1.0, 640, 0.5),
}
EAGER_TARGET = 1.0  # netc/torch-eager for every row without a higher training-step target
# A GPU step takes well under a millisecond for the small nets: at least this many steps per timed
# repeat keep the synchronize and the clock read a small part of it.
GPU_MIN_STEPS = 20


@dataclass(frozen=True)
class Kernel:
    shape: str  # for the table
    batch: int
    spec: str  # a netc spec whose module `k` is the layer timed
    fwd_flops: int  # per batch; backward is 2x (input and weight gradients)
    steps: int
    gpu_steps: int  # a GPU runs a step 10-100x faster: more steps for a measurable repeat
    target: float  # share of the CPU's GEMM ceiling (NumPy's np.dot) to reach
    # the products netc's kernels compute for the layer's forward and backward, at the whole
    # batch: (m, k, n, a transposed, b transposed) for C[m, n] = A @ B. The ceiling's worker times
    # them alone, one np.dot each: what OpenBLAS reaches at these shapes (not a bound on netc,
    # whose kernels run them as per-thread chunks).
    gemms: tuple[tuple[int, int, int, bool, bool], ...] = ()


KERNELS = {
    "conv": Kernel(
        "conv2d N64 C32 32×32 → 32, k3 p1, no bias",
        64,
        """netc: 1
inputs:
  x: {shape: [32, 32, 32]}
  t: {shape: [32, 32, 32]}
modules:
  k: {op: conv2d, in: x, out_channels: 32, kernel: 3, padding: 1, bias: false}
losses:
  l: {op: mse, in: [k, t]}
""",
        2 * 64 * 32 * 32 * 32 * 32 * 9,
        6,
        50,
        0.6,
        # y = W @ cols, dW = dy @ colsᵀ, dcols = Wᵀ @ dy: [O, C·9] and [C·9, N·H·W] (im2col)
        (
            (32, 288, 64 * 1024, False, False),
            (32, 64 * 1024, 288, False, True),
            (288, 32, 64 * 1024, True, False),
        ),
    ),
    "linear": Kernel(
        "linear N256 1024 → 1024, bias",
        256,
        """netc: 1
inputs:
  x: {shape: [1024]}
  t: {shape: [1024]}
modules:
  k: {op: linear, in: x, out_features: 1024}
losses:
  l: {op: mse, in: [k, t]}
""",
        2 * 256 * 1024 * 1024,
        12,
        100,
        0.9,
        # y = x @ Wᵀ, dx = dy @ W, dW = dyᵀ @ x
        ((256, 1024, 1024, False, True), (256, 1024, 1024, False, False), (1024, 256, 1024, True, False)),
    ),
}
GEMM_N = 2048
GPU_GEMM_SIZES = (512, 1024, 2048)  # square float32 GEMMs, netc's tiled kernel against cuBLAS
GPU_GEMM_FLOPS = 2e11  # per timed repeat, whatever the size: 0.1 s at 2 TFLOP/s


def gpu_gemm_steps(n: int) -> int:
    return max(3, math.ceil(GPU_GEMM_FLOPS / (2 * n**3)))


def torch_twin(net: str) -> Any:
    """The PyTorch module equivalent to a benchmark net's spec."""
    from torch import nn

    if net == "mlp":
        return nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )
    if net == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
        )  # fmt: skip
    if net == "resnet_mini":

        class Basic(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
                self.bn1 = nn.BatchNorm2d(32)
                self.conv2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
                self.bn2 = nn.BatchNorm2d(32)

            def forward(self, x: Any) -> Any:
                y = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
                return (y + x).relu()

        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            Basic(), Basic(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )  # fmt: skip
    if net == "transformer_layer":

        class Layer(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.layer = nn.TransformerEncoderLayer(
                    128, 4, 512, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
                )
                self.head = nn.Linear(128, 10)

            def forward(self, x: Any) -> Any:
                return self.head(self.layer(x).mean(dim=1))

        return Layer()
    raise ValueError(f"no PyTorch twin for '{net}'")


TORCH_INPUT = {
    "mlp": (784,),
    "lenet5": (1, 28, 28),
    "resnet_mini": (3, 32, 32),
    "transformer_layer": (64, 128),
}
