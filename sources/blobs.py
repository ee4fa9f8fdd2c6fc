"""`blobs`: Gaussian blobs, one per class, in as many dimensions as the first input has values."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import Source, noise, samples

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw

SAMPLES, NOISE, CLASSES = 300, 1.0, 3


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    import numpy as np

    from ..runtime.data.sources import class_count, feature_dim, xy

    d = feature_dim(inputs, "blobs")
    k = class_count(inputs, classes, CLASSES)
    n = int(data.get("samples") or SAMPLES)
    rng = np.random.default_rng(data.get("seed", 0))
    centers = rng.uniform(-5.0, 5.0, (k, d))
    y = np.arange(n) % k
    x = centers[y] + rng.normal(0.0, data.get("noise", NOISE), (n, d))
    return xy(x.reshape(n, *inputs[next(iter(inputs))]["shape"]), y, "data.source: blobs", k)


SOURCE = Source(
    name="blobs",
    doc="Gaussian blobs, one per class, in as many dimensions as the first input has values",
    fields={"samples": samples(f"default {SAMPLES}"), "noise": noise(NOISE)},
    loader=load,
)
