"""PNG plots of a training run: loss, metric, learning-rate and gradient-norm
curves from the trainer's metrics.jsonl records, weight and activation
histograms, confusion matrices, the learning-rate range test and, for
image-to-image nets, a grid of inputs, outputs and targets.

matplotlib is imported inside the functions, not at module level, so that
importing this module costs nothing when no plot is drawn. Every figure is drawn on the non-interactive
Agg backend, saved and closed: a training run must never open a window or
accumulate figures in pyplot's registry.

Longer than 500 lines: every figure a run writes, each drawn by a small function; they share
the lazy pyplot import, the drawing guard that closes a failed figure, and the save helper
(the one place tests intercept figures).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The splits a metrics key may be prefixed with ("<split>_<name>").
SPLITS = ("train", "val", "test")
# Metric names (possibly suffixed "_<loss>" for a network with several label
# inputs); every other numeric "<split>_<name>" key is a loss term.
_METRIC_RE = re.compile(r"^(accuracy|mae|rmse)(_.+)?$")
_SPLIT_RE = re.compile(rf"^({'|'.join(SPLITS)})_(.+)$")
_SPLIT_STYLE = {"train": "-", "val": "--", "test": ":"}

MAX_HISTOGRAM_PANELS = 30
MAX_GRAD_NORM_LINES = 12
# Above this many classes per-cell count annotations are unreadable.
MAX_ANNOTATED_CLASSES = 30
# np.histogram of a huge activation is slow and no more informative than a
# strided sample; mean and std are still computed over every element.
_HISTOGRAM_SAMPLE = 1_000_000

LR_FIND_DIVERGE = 4.0
# Fewer points than this give no meaningful slope after smoothing.
LR_FIND_MIN_POINTS = 8

DPI = 100


def _pyplot() -> Any:
    import matplotlib

    # Selecting a backend after pyplot is imported switches it and closes the
    # host's open figures (a notebook's, say); only choose when nobody has yet.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def _drawing() -> Iterator[None]:
    """Close the figures a failed drawing opened, so a per-epoch call that
    raises cannot pile up figures over a long run."""
    plt = _pyplot()
    before = set(plt.get_fignums())
    try:
        yield
    except BaseException:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
        raise


def _save(fig: Figure, path: Path) -> Path:
    plt = _pyplot()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _num(v: Any) -> float:
    """A record value as a float; None, strings and other non-numbers read as
    NaN so a malformed record leaves a gap instead of crashing the plot."""
    return float(v) if v is not None and _is_scalar(v) else math.nan


def _is_scalar(v: Any) -> bool:
    # None marks a value the trainer could not compute: still a scalar slot.
    return v is None or (not isinstance(v, bool) and isinstance(v, int | float | np.integer | np.floating))


def _finite(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def _wants_log(values: Iterable[float], decades: float = 2.0) -> bool:
    """Whether finite, all-positive values span more than ``decades`` decades."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.any(v <= 0):
        return False
    return bool(np.log10(v.max() / v.min()) > decades)


def _line(ax: Axes, x: Sequence[float], y: Sequence[float], log: bool = False, **kw: Any) -> bool:
    """Plot the finite (and, on a log axis, positive) points; markers when
    there are few, so a one-epoch run or a lone finite value still shows.
    Returns whether anything was drawn."""
    xa, ya = _finite(x, y)
    if log:
        xa, ya = xa[ya > 0], ya[ya > 0]
    if xa.size == 0:
        return False
    if xa.size <= 30:
        kw.setdefault("marker", "o")
        kw.setdefault("markersize", 3)
    ax.plot(xa, ya, **kw)
    return True


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(max_cols, n))
    return math.ceil(max(n, 1) / cols), cols


def _epochs(records: Sequence[dict]) -> list[float]:
    return [_num(r.get("epoch", i + 1)) for i, r in enumerate(records)]


def _split_keys(records: Sequence[dict]) -> tuple[list[str], list[str]]:
    """The loss-term and metric names found under any split prefix, in first
    seen order; the weighted total "loss" leads the terms."""
    terms: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for r in records:
        for key, v in r.items():
            m = _SPLIT_RE.match(key)
            if m is None or not _is_scalar(v):
                continue
            name = m.group(2)
            (metrics if _METRIC_RE.match(name) else terms)[name] = None
    names = list(terms)
    if "loss" in terms:
        names.remove("loss")
        names.insert(0, "loss")
    return names, list(metrics)


def _split_figure(records: Sequence[dict], names: list[str], kind: str, log_when_wide: bool) -> Figure:
    """One subplot per name, one line per split present."""
    plt = _pyplot()
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.4 * rows), squeeze=False)
    x = _epochs(records)
    for ax, name in zip(axes.flat, names, strict=False):
        series = {s: [_num(r.get(f"{s}_{name}")) for r in records] for s in SPLITS}
        log = log_when_wide and _wants_log(v for ys in series.values() for v in ys)
        drawn = False
        for split, ys in series.items():
            drawn |= _line(ax, x, ys, log=log, label=split, linestyle=_SPLIT_STYLE[split])
        ax.set_title(f"{kind}: {name}" if name != "loss" else "total loss (weighted)")
        ax.set_xlabel("epoch")
        if log:
            ax.set_yscale("log")
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _losses_figure(records: Sequence[dict]) -> Figure | None:
    terms, _ = _split_keys(records)
    return _split_figure(records, terms, "loss", log_when_wide=True) if terms else None


def _metrics_figure(records: Sequence[dict]) -> Figure | None:
    _, metrics = _split_keys(records)
    return _split_figure(records, metrics, "metric", log_when_wide=False) if metrics else None


def _lr_figure(records: Sequence[dict]) -> Figure | None:
    per_step = any(isinstance(r.get("lrs"), list | tuple | np.ndarray) for r in records)
    if per_step:
        ys: list[float] = []
        boundaries: list[int] = []
        for r in records:
            lrs = r.get("lrs")
            # A record without a per-step list (a resumed run's older epochs,
            # say) contributes its epoch LR as one step.
            vals = list(lrs) if isinstance(lrs, list | tuple | np.ndarray) else [r.get("lr")]
            ys.extend(_num(v) for v in vals)
            boundaries.append(len(ys))
        xs = list(range(1, len(ys) + 1))
        xlabel = "step"
    else:
        ys = [_num(r.get("lr")) for r in records]
        xs, xlabel, boundaries = _epochs(records), "epoch", []
    if not np.isfinite(ys).any():
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    log = _wants_log(ys)
    _line(ax, xs, ys, log=log, color="tab:blue")
    if 1 < len(boundaries) <= 50:
        for b in boundaries[:-1]:
            ax.axvline(b + 0.5, color="grey", alpha=0.25, linewidth=0.8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate per step (grey: epoch ends)" if per_step and boundaries else "learning rate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _grad_norms_figure(records: Sequence[dict]) -> Figure | None:
    x = _epochs(records)
    total = [_num(r.get("grad_norm")) for r in records]
    per: dict[str, list[float]] = {}
    for i, r in enumerate(records):
        norms = r.get("grad_norms")
        if not isinstance(norms, dict):
            continue
        for name, v in norms.items():
            per.setdefault(name, [math.nan] * len(records))[i] = _num(v)
    has_total = bool(np.isfinite(total).any())
    if not has_total and not per:
        return None
    plt = _pyplot()
    panels = int(has_total) + int(bool(per))
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels + (2.5 if per else 0), 4.2), squeeze=False)
    axes = list(axes.flat)
    if has_total:
        ax = axes.pop(0)
        log = _wants_log(total)
        _line(ax, x, total, log=log, color="black")
        if log:
            ax.set_yscale("log")
        ax.set_title("global gradient norm")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if per:
        ax = axes.pop(0)

        def peak(name: str) -> float:
            v = np.asarray(per[name])
            v = v[np.isfinite(v)]
            return float(v.max()) if v.size else -math.inf

        # A legend of hundreds of entries is unreadable; the largest norms are
        # the ones that explain an exploding global norm.
        shown = sorted(per, key=peak, reverse=True)[:MAX_GRAD_NORM_LINES]
        for name in shown:
            _line(ax, x, per[name], log=True, label=name, linewidth=1.0)
        ax.set_yscale("log")
        title = "per-parameter gradient norms"
        if len(per) > len(shown):
            title += f"\n(the {len(shown)} largest of {len(per)} parameters)"
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def plot_history(records: list[dict], out_dir: Path) -> list[Path]:
    """Plot a run's per-epoch records (metrics.jsonl) into ``out_dir``.

    Writes losses.png (train/val curves of the total and of every loss term,
    log y when a term spans more than two decades), metrics.png (accuracy /
    MAE / RMSE, omitted when the run has none), lr.png (per step when the
    records carry "lrs", else per epoch) and grad_norms.png (global norm and
    the largest per-parameter norms). Non-finite values are left out of the
    curves. Returns the paths written.
    """
    out_dir = Path(out_dir)
    written = []
    for name, build in (
        ("losses.png", _losses_figure),
        ("metrics.png", _metrics_figure),
        ("lr.png", _lr_figure),
        ("grad_norms.png", _grad_norms_figure),
    ):
        with _drawing():
            fig = build(records) if records else None
        if fig is not None:
            written.append(_save(fig, out_dir / name))
    return written


def _steps_figure(steps: Sequence[dict]) -> Figure:
    plt = _pyplot()
    x = np.array([_num(r.get("step")) for r in steps])
    y = np.array([_num(r.get("loss")) for r in steps])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    log = _wants_log(y)
    _line(ax, x, y, log=log, color="tab:blue", alpha=0.3, linewidth=0.7, label="loss per step")
    ok = np.isfinite(y) & (y > 0 if log else True)
    if ok.sum() >= LR_FIND_MIN_POINTS:  # a trend line once there is something to smooth
        # An EMA over ~1% of the run (at least 10 steps): minibatch noise averages out at any length.
        span = max(10, int(ok.sum()) // 100)
        _line(ax, x[ok], _smooth(y[ok], 1 - 1 / span), log=log, color="tab:blue", linewidth=1.6,
              label=f"smoothed (EMA over ~{span} steps)")  # fmt: skip
    epochs = [_num(r.get("epoch")) for r in steps]
    ends = [x[i] + 0.5 for i in range(len(steps) - 1) if epochs[i + 1] != epochs[i]]
    if len(ends) <= 50:  # more lines than that only grey the plot
        for b in ends:
            ax.axvline(b, color="grey", alpha=0.25, linewidth=0.8)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (weighted total)")
    ax.set_title("training loss per step" + (" (grey: epoch ends)" if ends and len(ends) <= 50 else ""))
    if ax.lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_steps(steps: list[dict], out_dir: Path) -> Path:
    """steps.png: the training loss of every optimizer step (steps.jsonl), raw and smoothed,
    log y when it spans more than two decades, grey lines at epoch ends."""
    with _drawing():
        fig = _steps_figure(steps)
    return _save(fig, Path(out_dir) / "steps.png")


def _spread(n: int, cap: int) -> list[int]:
    """Up to ``cap`` indices of ``n`` spread evenly over the range, the first and last included:
    a deep network's histograms then cover its whole depth, not only its largest tensors."""
    if n <= cap:
        return list(range(n))
    return sorted({round(i * (n - 1) / (cap - 1)) for i in range(cap)})


def _histogram_panel(ax: Axes, name: str, arr: np.ndarray, color: str, note: str) -> None:
    flat = arr.reshape(-1)
    if not (np.issubdtype(flat.dtype, np.number) or flat.dtype == np.bool_) or np.iscomplexobj(flat):
        flat = np.empty(0)
    flat = flat.astype(np.float64, copy=False)
    finite = flat[np.isfinite(flat)]
    short = name if len(name) <= 30 else "…" + name[-29:]
    shape = "×".join(str(d) for d in arr.shape) or "scalar"
    label = f"{short}{note} [{shape}]"
    if finite.size == 0:
        ax.set_title(label, fontsize=8)
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    else:
        step = max(1, finite.size // _HISTOGRAM_SAMPLE)
        # One stairs artist instead of hist's 50 bar patches: a grid of panels draws several
        # times faster.
        counts, edges = np.histogram(finite[::step], bins=50)
        ax.stairs(counts, edges, fill=True, color=color)
        stats = f"mean {finite.mean():.3g}  std {finite.std():.3g}"
        if finite.size < flat.size:
            stats += f"  ({flat.size - finite.size:,} non-finite)"
        ax.set_title(f"{label}\n{stats}", fontsize=8)
    ax.set_yticks([])  # the counts scale with the batch; the shape is what matters
    ax.xaxis.set_major_locator(_pyplot().MaxNLocator(4))
    ax.tick_params(labelsize=7)


def _histograms_figure(
    epoch: int,
    params: dict[str, np.ndarray],
    activations: dict[str, np.ndarray],
    buffers: Collection[str] = (),
) -> Figure:
    plt = _pyplot()
    sections = []
    for kind, tensors in (("parameters", params), ("activations", activations)):
        names = list(tensors)  # the network's order, as given
        if names:
            shown = [names[i] for i in _spread(len(names), MAX_HISTOGRAM_PANELS)]
            sections.append((kind, names, tensors, shown))
    cols = 6
    # Inches: a panel row (two 8-point title lines, 7-point ticks), a section's head (its title
    # above the first row's panel titles), the figure's own title.
    panel_h, head_h, top_h = 2.0, 0.75, 0.4
    heights = [math.ceil(len(shown) / cols) * panel_h + head_h for *_, shown in sections]
    if heights:
        heights[0] += top_h
    fig = plt.figure(figsize=(3.0 * cols, sum(heights) if heights else 2.0))
    fig.suptitle(f"epoch {epoch}", fontsize=11, y=1 - 0.1 / (sum(heights) or 2.0), va="top")
    if not sections:
        fig.text(0.5, 0.5, "no tensors", ha="center", va="center")
        return fig
    subs = fig.subfigures(len(sections), 1, height_ratios=heights, squeeze=False)
    for i, (sf, (kind, names, tensors, shown), h) in enumerate(
        zip(subs.flat, sections, heights, strict=True)
    ):
        title = f"{kind}: {len(names)}, in network order"
        if len(shown) < len(names):
            title += f" ({len(shown)} spread over the network shown)"
        if kind == "parameters" and any(n in buffers for n in names):
            title += "; grey: buffers (running statistics)"
        top = top_h if i == 0 else 0.0
        sf.suptitle(title, fontsize=10, x=0.01, ha="left", y=1 - (top + 0.08) / h, va="top")
        axes = sf.subplots(math.ceil(len(shown) / cols), cols, squeeze=False)
        for ax, name in zip(axes.flat, shown, strict=False):
            if kind == "activations":
                color, note = "tab:orange", ""
            else:
                color, note = ("tab:gray", " (buffer)") if name in buffers else ("tab:blue", "")
            _histogram_panel(ax, name, np.asarray(tensors[name]), color, note)
        for ax in axes.flat[len(shown) :]:
            ax.set_visible(False)
        # Fixed margins instead of tight_layout, which would draw the whole grid once more
        # only to measure it.
        sf.subplots_adjust(left=0.02, right=0.99, bottom=0.3 / h, top=1 - (top + head_h) / h, wspace=0.12,
                           hspace=0.75)  # fmt: skip
    return fig


def plot_histograms(
    epoch: int,
    params: dict[str, np.ndarray],
    activations: dict[str, np.ndarray],
    out_dir: Path,
    buffers: Collection[str] = (),
) -> Path:
    """Histograms of every parameter and activation tensor, written to
    ``out_dir/histograms/epoch_NNN.png``: parameters first, then activations, each in the order
    given (the network's), each panel titled with its name, shape, mean and std; ``buffers``
    (BatchNorm running statistics) are drawn grey. Above ``MAX_HISTOGRAM_PANELS`` tensors of a
    kind, that many spread evenly from the first to the last are shown, and the section title
    says so. Non-finite values are counted, not binned."""
    with _drawing():
        fig = _histograms_figure(epoch, params, activations, buffers)
    return _save(fig, Path(out_dir) / "histograms" / f"epoch_{epoch:03d}.png")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Counts ``cm[t, p]`` of samples of true class t predicted as p, int64
    [k, k]. Inputs of any shape (per-token labels [N, T], say) are flattened;
    a label outside [0, k) is an error, not silently dropped."""
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    for what, a in (("y_true", t), ("y_pred", p)):
        if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or a.min() < 0 or a.max() >= k):
            raise ValueError(f"{what} must hold class indices in [0, {k})")
    t, p = t.astype(np.int64), p.astype(np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _confusion_figure(cm: np.ndarray, labels: list[str] | None) -> Figure:
    plt = _pyplot()
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    k = cm.shape[0]
    if labels is not None and len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} classes")
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    rate = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    total = cm.sum()
    side = min(16.0, max(4.5, 0.45 * k + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if k <= MAX_ANNOTATED_CLASSES:
        size = 9 if k <= 10 else 6
        for i in range(k):
            for j in range(k):
                colour = "white" if rate[i, j] > 0.5 else "black"
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", color=colour, fontsize=size)
    names = labels if labels is not None else [str(i) for i in range(k)]
    ticks = np.arange(k) if k <= 50 else np.linspace(0, k - 1, 26).round().astype(int)
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90 if k > 10 else 0)
    ax.set_yticks(ticks, [names[i] for i in ticks])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(cm) / total if total else math.nan
    ax.set_title(f"accuracy {acc:.2%} of {total:,}" if total else "no samples")
    fig.tight_layout()
    return fig


def plot_confusion(cm: np.ndarray, path: Path, labels: list[str] | None = None) -> Path:
    """A confusion matrix (rows = true class) coloured by the row-normalized
    rate, so rare classes are as visible as common ones, annotated with the
    counts (up to ``MAX_ANNOTATED_CLASSES`` classes), with the accuracy in the
    title."""
    with _drawing():
        fig = _confusion_figure(cm, labels)
    return _save(fig, Path(path))


MAX_IMAGES = 8


def _images_figure(rows: dict[str, np.ndarray]) -> Figure:
    plt = _pyplot()
    n = min(MAX_IMAGES, min(len(a) for a in rows.values()))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.45 * len(rows)), squeeze=False)
    for r, (title, images) in enumerate(rows.items()):
        for i in range(n):
            ax, img = axes[r][i], np.asarray(images[i], np.float64)
            # one channel as grey, three as RGB (each image scaled to [0, 1] for the display)
            img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
            lo, hi = np.nanmin(img), np.nanmax(img)
            ax.imshow((img - lo) / (hi - lo) if hi > lo else img * 0, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_images(rows: dict[str, np.ndarray], path: Path) -> Path:
    """A grid of images [N, C, H, W]: one row per entry of ``rows`` (title -> images; an
    image-to-image net's inputs, outputs and targets), up to ``MAX_IMAGES`` columns, the same
    samples in each column."""
    with _drawing():
        fig = _images_figure(rows)
    return _save(fig, Path(path))


def _smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """Bias-corrected exponential moving average (the first values are not
    dragged toward zero by the EMA's zero start)."""
    out = np.empty(losses.size)
    avg = 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * v
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


def _centred(losses: np.ndarray, h: int) -> np.ndarray:
    """A range test's loss smoothed without lag: a running median over ±h steps, which drops
    single noisy or exploding batches, then a Gaussian of width h. An EMA would do for a trend
    line, but its lag of ~1/(1-beta) steps is decades of LR in a range test, and a suggestion
    read off it lands far too low (2.8e-7 for digits_mlp, whose loss falls between 1e-3 and
    3e-2)."""
    n = losses.size
    med = np.array([np.median(losses[max(0, i - h) : i + h + 1]) for i in range(n)])
    if n == 0:
        return med
    k = np.exp(-0.5 * (np.arange(-3 * h, 3 * h + 1) / h) ** 2)
    return np.convolve(med, k, "same") / np.convolve(np.ones(n), k, "same")  # renormalized at the ends


def _halfwidth(steps: int) -> int:
    """The smoothing half-width of a range test of ``steps`` steps: 1/40 of it, at least 2."""
    return max(2, steps // 40)


def _lr_find_curve(lrs: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The usable part of a range test in step order: (lrs, raw, smoothed)
    up to the first non-finite loss or the step where the smoothed loss
    exceeds ``LR_FIND_DIVERGE`` times its running minimum."""
    lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if lrs.shape != losses.shape:
        raise ValueError(f"{lrs.size} learning rates but {losses.size} losses")
    # A non-finite loss is the run blowing up: nothing after it is usable.
    bad = np.flatnonzero(~np.isfinite(losses) | ~np.isfinite(lrs) | (lrs <= 0))
    n = int(bad[0]) if bad.size else lrs.size
    h = _halfwidth(lrs.size)  # of the whole test: where it blew up does not change the smoothing
    lrs, losses = lrs[:n], losses[:n]
    smoothed = _centred(losses, h)
    best = np.minimum.accumulate(smoothed)
    # Running, not global, minimum: a loss that falls more than 4x from its
    # start must not cut the start off. The ratio test needs a positive best.
    over = np.flatnonzero((best > 0) & (smoothed > LR_FIND_DIVERGE * best))
    n = int(over[0]) if over.size else n
    return lrs[:n], losses[:n], smoothed[:n]


def suggest_lr(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The LR range test's suggestion: the learning rate where the smoothed loss (``_centred``:
    no lag) falls fastest against log LR, between the first steps and the smoothed loss's
    minimum, before divergence. None with fewer than ``LR_FIND_MIN_POINTS`` usable points or
    when the loss never falls. On every shipped example, a short run at the suggestion reaches
    about the loss of the tuned train section (tests/runtime/test_lr_find.py)."""
    lr, _, smoothed = _lr_find_curve(lrs, losses)
    # Order by LR (a range test already is) and drop repeated LRs, whose zero
    # spacing would make the slope infinite.
    order = np.argsort(lr, kind="stable")
    lr, smoothed = lr[order], smoothed[order]
    keep = np.concatenate([[True], np.diff(lr) > 0]) if lr.size else np.zeros(0, bool)
    lr, smoothed = lr[keep], smoothed[keep]
    if lr.size < LR_FIND_MIN_POINTS:
        return None
    slope = np.gradient(smoothed, np.log10(lr))
    # Descent only counts before the smoothed loss's minimum (past it the loss climbs out), and
    # not in the first h steps, where the running median's window is cut short.
    skip = min(_halfwidth(np.asarray(lrs).size), lr.size // 4)
    end = max(int(np.argmin(smoothed)) + 1, skip + 1)
    i = skip + int(np.argmin(slope[skip:end]))
    # A flat curve's slope is rounding noise around zero, not a descent.
    tol = 1e-9 * float(np.abs(smoothed).max())
    return float(lr[i]) if slope[i] < -tol else None


def _lr_find_figure(lrs: np.ndarray, losses: np.ndarray, suggested: float | None) -> Figure:
    plt = _pyplot()
    lrs = np.asarray(lrs, dtype=np.float64).reshape(-1)
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    use_lr, use_raw, use_smooth = _lr_find_curve(lrs, losses)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pos = np.isfinite(lrs) & (lrs > 0)
    drawn = _line(ax, lrs[pos], losses[pos], color="tab:blue", alpha=0.35, linewidth=0.8, label="loss")
    _line(ax, use_lr, use_smooth, color="tab:blue", linewidth=1.8, label="smoothed (running median)")
    if drawn:
        ax.set_xscale("log")
    # The diverged tail reaches huge values that would flatten the useful
    # part; clip the view to the pre-divergence range.
    view = np.concatenate([use_raw, use_smooth])
    view = view[np.isfinite(view)]
    if view.size:
        lo, hi = float(view.min()), float(np.percentile(view, 99))
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1e-3)
        ax.set_ylim(lo - pad, hi + pad)
    if suggested is not None and math.isfinite(suggested) and suggested > 0:
        ax.axvline(suggested, color="tab:red", linestyle="--", linewidth=1)
        if use_lr.size:
            j = int(np.argmin(np.abs(np.log(use_lr) - math.log(suggested))))
            ax.plot([use_lr[j]], [use_smooth[j]], "o", color="tab:red", label=f"suggested {suggested:.2e}")
        else:
            ax.plot([], [], "--", color="tab:red", label=f"suggested {suggested:.2e}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("learning-rate range test")
    if ax.lines:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, suggested: float | None, path: Path) -> Path:
    """The range test's loss against LR (log x): raw and smoothed loss, the y
    range clipped to the part before divergence, and a marker at
    ``suggested``."""
    with _drawing():
        fig = _lr_find_figure(lrs, losses, suggested)
    return _save(fig, Path(path))
