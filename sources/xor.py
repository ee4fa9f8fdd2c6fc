"""`xor`: the four XOR points, or `samples` noisy copies of them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import Source, noise, samples

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw

NOISE = 0.1


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    import numpy as np

    from ..runtime.data.sources import feature_dim, xy

    feature_dim(inputs, "xor", 2)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    labels = np.array([0, 1, 1, 0])
    if not data.get("samples"):
        return xy(corners, labels, "data.source: xor", 2)
    rng = np.random.default_rng(data.get("seed", 0))
    n = int(data["samples"])
    which = np.arange(n) % 4  # balanced corners
    x = corners[which] + rng.normal(0.0, data.get("noise", NOISE), (n, 2))
    return xy(x, labels[which], "data.source: xor", 2)


SOURCE = Source(
    name="xor",
    doc="the four XOR points, or `samples` noisy copies of them; labels 0/1",
    fields={"samples": samples("default: the four points, once, without noise"), "noise": noise(NOISE)},
    loader=load,
)
