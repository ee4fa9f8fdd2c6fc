"""`majority`: the marked-majority sequence task (int64 token sequences, docs/data.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import Source, samples

if TYPE_CHECKING:
    import numpy as np

    from ..runtime.data.sources import Raw

SAMPLES, CLASSES = 4000, 10


def majority_task(n: int, length: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The `majority` sequence task: (tokens [n, length] int64, labels [n] int64).

    Each position holds one of ``k`` content classes, drawn uniformly; ``m``
    positions (``m = length // 8`` rounded up to odd, at least 1) are marked, and
    a marked position's token id is ``class + k`` (vocabulary ``2k``). The label
    is the class that occurs most often among the marked positions, unique by
    construction. The marks go onto an already drawn sequence, so the class
    counts over all positions say (next to) nothing about the label: a model has
    to tell marked tokens from the rest."""
    import numpy as np

    m = max(1, length // 8)
    m = min(m + 1 - m % 2, length)
    tokens = np.empty((n, length), np.int64)
    labels = np.empty(n, np.int64)
    for i in range(n):
        marked = np.bincount(rng.integers(0, k, m), minlength=k)
        tied = np.flatnonzero(marked == marked.max())
        label = int(rng.choice(tied))
        if len(tied) > 1:  # break the tie by moving one mark of another tied class to the label
            marked[label] += 1
            marked[rng.choice(tied[tied != label])] -= 1
        for _ in range(100):
            content = rng.integers(0, k, length)
            if (np.bincount(content, minlength=k) >= marked).all():
                break
        else:
            # k far above length / m: too few of some class to mark. Write the marked classes
            # in, which makes the overall counts lean towards the label.
            content[rng.choice(length, m, replace=False)] = np.repeat(np.arange(k), marked)
        seq = content.copy()
        for c in np.flatnonzero(marked):
            seq[rng.choice(np.flatnonzero(content == c), marked[c], replace=False)] += k
        tokens[i] = seq
        labels[i] = label
    return tokens, labels


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    import numpy as np

    from ..runtime.data.errors import DataError, shape_str
    from ..runtime.data.sources import class_count, xy

    name = next(iter(inputs))
    spec = inputs[name]
    if spec["dtype"] != "int64" or len(spec["shape"]) != 1:
        raise DataError(
            f"input '{name}' {shape_str(spec['shape'])} {spec['dtype']} cannot be fed by data.source: "
            "majority, which provides int64 token sequences [L]"
        )
    k = class_count(inputs, classes, CLASSES)
    rng = np.random.default_rng(data.get("seed", 0))
    x, y = majority_task(int(data.get("samples") or SAMPLES), spec["shape"][0], k, rng)
    return xy(x, y, "data.source: majority", k)


SOURCE = Source(
    name="majority",
    doc="the marked-majority sequence task: int64 token sequences [L] and their labels",
    fields={"samples": samples(f"default {SAMPLES}")},
    loader=load,
)
