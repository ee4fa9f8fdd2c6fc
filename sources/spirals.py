"""`spirals`: interleaved 2-D spirals, one per class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import Source, noise, samples

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw

SAMPLES, NOISE, CLASSES = 300, 0.2, 2


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    import numpy as np

    from ..runtime.data.sources import class_count, feature_dim, xy

    feature_dim(inputs, "spirals", 2)
    k = class_count(inputs, classes, CLASSES)
    n = int(data.get("samples") or SAMPLES)
    rng = np.random.default_rng(data.get("seed", 0))
    y = np.arange(n) % k
    r = rng.uniform(0.05, 1.0, n)  # radius, which the angle follows: r * 4 radians of turn
    t = r * 4.0 + y * (2 * np.pi / k) + rng.normal(0.0, data.get("noise", NOISE), n)
    x = np.stack([r * np.sin(t), r * np.cos(t)], 1)
    return xy(x, y, "data.source: spirals", k)


SOURCE = Source(
    name="spirals",
    doc="interleaved 2-D spirals, one per class",
    fields={"samples": samples(f"default {SAMPLES}"), "noise": noise(NOISE)},
    loader=load,
)
