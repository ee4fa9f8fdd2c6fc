"""What happens to samples after loading: :class:`Normalizer` and :class:`Augmenter`.

The normalizer standardizes or min-max scales float features with statistics from the train
split only (and round-trips them through a checkpoint); the augmenter flips, crops and adds
noise to image batches in place, seeded, without allocating per batch. ``normalized_splits``
applies both the normalizer and ``data.denoise`` (a clean target, a noisy copy as input).
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .errors import DataError, shape_str


class Normalizer:
    """Per-feature ``(x - shift) / scale`` for the float feature inputs.

    ``standardize``: shift = mean, scale = standard deviation; ``minmax``:
    shift = min, scale = max - min (so the train split lands in [0, 1]). A
    constant feature gets scale 1. The statistics come from the data given to
    ``fit`` (the train split); image inputs ``[C, H, W]`` get one statistic per
    channel (per-pixel statistics would undo crops and shifts), every other
    input one per element. int64 inputs and the target are left alone."""

    def __init__(self, mode: str, stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        if mode not in ("none", "standardize", "minmax"):
            raise DataError(f"data.normalize: unknown mode '{mode}' (none, standardize, minmax)")
        self.mode = mode
        self.stats = stats or {}  # input -> (shift, scale), each broadcastable to one sample

    @classmethod
    def fit(cls, ds: Dataset, mode: str) -> Normalizer:
        stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if mode != "none":
            for name, a in ds.arrays.items():
                if name == ds.target or a.dtype != np.float32:
                    continue
                axes = (0, 2, 3) if a.ndim == 4 else (0,)
                x = a.astype(np.float64)
                if mode == "standardize":
                    shift, scale = x.mean(axes, keepdims=True), x.std(axes, keepdims=True)
                else:
                    shift = x.min(axes, keepdims=True)
                    scale = x.max(axes, keepdims=True) - shift
                scale = np.where(scale > 0, scale, 1.0)
                stats[name] = (shift[0].astype(np.float32), scale[0].astype(np.float32))
        return cls(mode, stats)

    def apply_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The arrays normalized (new arrays; inputs without statistics pass through)."""
        out = dict(arrays)
        for name, (shift, scale) in self.stats.items():
            if name in out:
                out[name] = np.ascontiguousarray((out[name] - shift) / scale, dtype=np.float32)
        return out

    def apply(self, ds: Dataset) -> Dataset:
        return Dataset(self.apply_arrays(ds.arrays), ds.task, ds.target, ds.num_classes)

    def state(self) -> dict[str, np.ndarray]:
        """Plain arrays for a checkpoint: ``{input}.shift`` and ``{input}.scale``."""
        out = {}
        for name, (shift, scale) in self.stats.items():
            out[f"{name}.shift"], out[f"{name}.scale"] = shift, scale
        return out

    @classmethod
    def from_state(cls, mode: str, arrays: dict[str, np.ndarray]) -> Normalizer:
        stats = {}
        for key, shift in arrays.items():
            if key.endswith(".shift"):
                name = key.removesuffix(".shift")
                stats[name] = (np.asarray(shift, np.float32), np.asarray(arrays[f"{name}.scale"], np.float32))
        return cls(mode, stats)


# -- augmentation ----------------------------------------------------------------------------------


class Augmenter:
    """Training-time augmentation of image inputs (float32 ``[N, C, H, W]``), in place.

    Per call, in this order: a horizontal flip of each sample with probability
    1/2 (``hflip``); a random shift of up to ``crop_padding`` pixels on each axis
    with zeros filled in, i.e. a crop of the zero-padded image back to its size;
    Gaussian noise of standard deviation ``noise_std``. Flips and crops draw once
    per sample and apply to every image input alike (so an image and its
    target mask stay aligned); noise goes to the feature images, not to an image
    target. The result depends only on the batch and the Generator's state."""

    def __init__(self, cfg: dict | None, inputs: dict[str, dict]) -> None:
        cfg = cfg or {}
        self.hflip = bool(cfg.get("hflip", False))
        self.pad = int(cfg.get("crop_padding") or 0)
        self.noise_std = float(cfg.get("noise_std") or 0.0)
        names = list(inputs)
        target = names[-1] if len(names) >= 2 else None
        self.images = [
            n for n, s in inputs.items() if len(s["shape"]) == 3 and s.get("dtype", "float32") == "float32"
        ]
        self.noisy = [n for n in self.images if n != target]
        wanted = [
            k
            for k, on in (("hflip", self.hflip), ("crop_padding", self.pad), ("noise_std", self.noise_std))
            if on
        ]
        if wanted and not self.images:
            shapes = ", ".join(f"'{n}' {shape_str(s['shape'])}" for n, s in inputs.items())
            verb = "needs" if len(wanted) == 1 else "need"
            raise DataError(
                f"data.augment: {', '.join(wanted)} {verb} an image input (float32 [C, H, W]); "
                f"the inputs are {shapes}"
            )
        self.active = bool(wanted)
        self._work: dict[str, np.ndarray] = {}  # per input, one batch-sized scratch buffer, reused

    def _scratch(self, name: str, x: np.ndarray) -> np.ndarray:
        w = self._work.get(name)
        if w is None or w.shape != x.shape:
            w = self._work[name] = np.empty_like(x)
        return w

    def __call__(self, batch: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        if not self.active:
            return
        present = [n for n in self.images if n in batch]
        if not present:
            return
        n = len(batch[present[0]])
        flip = np.flatnonzero(rng.random(n) < 0.5) if self.hflip else None
        shift = rng.integers(-self.pad, self.pad + 1, size=(n, 2)) if self.pad else None
        for name in present:
            x = batch[name]
            work = self._scratch(name, x)
            if flip is not None:
                for i in flip:  # through the scratch buffer: x[i] = x[i, ..., ::-1] would alias
                    work[i] = x[i, :, :, ::-1]
                    x[i] = work[i]
            if shift is not None:
                work[...] = x
                x.fill(0.0)
                h, w = x.shape[2], x.shape[3]
                for i in range(n):
                    dy, dx = int(shift[i, 0]), int(shift[i, 1])
                    if abs(dy) >= h or abs(dx) >= w:
                        continue  # shifted wholly out of the frame: all padding
                    # output pixel (r, c) = input pixel (r + dy, c + dx), zero outside
                    x[i, :, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = work[
                        i, :, max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
                    ]
        if self.noise_std:
            for name in self.noisy:
                if name in batch:
                    x = batch[name]
                    work = self._scratch(name, x)
                    rng.standard_normal(out=work, dtype=np.float32)
                    work *= np.float32(self.noise_std)
                    x += work


# -- denoising --------------------------------------------------------------------------------------


def normalized_splits(
    cfg: dict, splits: tuple[Dataset, Dataset | None, Dataset | None], seed: int
) -> tuple[Dataset, Dataset | None, Dataset | None, Normalizer]:
    """The train, validation and test splits normalized with the train split's statistics, and
    the normalizer. With ``data.denoise: s`` (an image-to-image net, a denoising autoencoder) the
    target, a float image of the first input's shape (both usually fed the same array through
    ``columns``), is normalized like the first input, and validation and test inputs get fixed
    Gaussian noise of standard deviation s (seeded); training batches get fresh noise from the
    augmenter (``augment_config``)."""
    train, val, test = splits
    norm = Normalizer.fit(train, cfg.get("normalize", "none"))
    std = float(cfg.get("denoise") or 0.0)
    if std:
        first, target = next(iter(train.arrays)), train.target
        x, y = train.arrays[first], train.arrays.get(target) if target else None
        if y is None or y.dtype != np.float32 or y.shape[1:] != x.shape[1:] or x.ndim != 4:
            got = "no target" if y is None else f"target '{target}' {shape_str(list(y.shape[1:]))} {y.dtype}"
            raise DataError(
                f"data.denoise needs a float32 image target of the first input's shape "
                f"{shape_str(list(x.shape[1:]))} (a clean copy of '{first}'), got {got}"
            )
        if first in norm.stats:
            norm.stats[target] = norm.stats[first]
    out = [d and norm.apply(d) for d in (train, val, test)]
    if std:
        rng = np.random.default_rng(seed)
        for d in out[1:]:
            if d is not None:
                x = d.arrays[first]
                x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(std)
    return out[0], out[1], out[2], norm


def augment_config(cfg: dict) -> dict | None:
    """``data.augment``, with ``data.denoise``'s noise added as its ``noise_std``."""
    aug = cfg.get("augment")
    if not cfg.get("denoise"):
        return aug
    if (aug or {}).get("noise_std"):
        raise DataError("data.denoise sets the training noise itself: leave out augment.noise_std")
    return {**(aug or {}), "noise_std": float(cfg["denoise"])}
