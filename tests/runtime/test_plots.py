"""The training-run plots: every function writes a real PNG, survives the
awkward records a run produces (one epoch, no validation split, NaNs, many
parameters), and draws what it claims (log axes, capped legends and panels);
confusion_matrix and suggest_lr compute the right numbers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from netc.runtime import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Through the module, so the tests run on the backend it selects.
plt = plots._pyplot()


def assert_png(path: Path, min_h: int = 200, min_w: int = 300) -> np.ndarray:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert min_h <= img.shape[0] <= 5000 and min_w <= img.shape[1] <= 5000, img.shape
    # Not a blank canvas: something was drawn.
    assert img[..., :3].std() > 0.01
    return img


def record(epoch: int, val: bool = True, **extra: object) -> dict:
    r: dict = {
        "epoch": epoch,
        "step": 100 * epoch,
        "time": 1.5 * epoch,
        "lr": 0.1 / epoch,
        "train_loss": 2.0 / epoch,
        "train_ce": 1.8 / epoch,
        "train_l2": 0.2 / epoch,
        "train_accuracy": 1 - 0.5 / epoch,
        "grad_norm": 1.0 / epoch,
        "grad_norms": {"conv1.w": 0.5 / epoch, "conv1.b": 0.01 / epoch, "fc.w": 0.8 / epoch},
    }
    if val:
        r |= {"val_loss": 2.1 / epoch, "val_ce": 1.9 / epoch, "val_l2": 0.2 / epoch, "val_accuracy": 0.5}
    return r | extra


@pytest.fixture(autouse=True)
def no_leaked_figures():
    plt.close("all")
    yield
    # Every public function closes what it drew; tests close what helpers return.
    assert plt.get_fignums() == []


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The figures the public functions save, by file name: a closed figure
    is still inspectable, so each test draws once and checks both the PNG and
    what went into it."""
    figures: dict[str, Figure] = {}
    save = plots._save

    def capture(fig: Figure, path: Path) -> Path:
        figures[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return figures


def labels_of(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_import_does_not_load_matplotlib(tmp_path):
    code = "import netc.runtime.plots, sys; assert 'matplotlib' not in sys.modules, 'eager import'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_history_writes_every_plot(tmp_path, drawn):
    records = [record(e, lrs=[0.1 / e] * 5) for e in range(1, 11)]
    paths = plots.plot_history(records, tmp_path / "run")
    assert [p.name for p in paths] == ["losses.png", "metrics.png", "lr.png", "grad_norms.png"]
    for p in paths:
        assert p.parent == tmp_path / "run"
        assert_png(p)
    titles = [ax.get_title() for ax in drawn["losses.png"].axes]
    assert titles == ["total loss (weighted)", "loss: ce", "loss: l2"]
    assert all(labels_of(ax) == ["train", "val"] for ax in drawn["losses.png"].axes)
    assert [ax.get_title() for ax in drawn["metrics.png"].axes] == ["metric: accuracy"]
    lr = drawn["lr.png"].axes[0]
    assert lr.get_xlabel() == "step" and len(lr.lines[0].get_xdata()) == 50


def test_history_one_epoch(tmp_path, drawn):
    paths = plots.plot_history([record(1)], tmp_path)
    assert len(paths) == 4
    for p in paths:
        assert_png(p)
    line = drawn["losses.png"].axes[0].lines[0]
    # A lone point is invisible as a line; it must carry a marker.
    assert len(line.get_xdata()) == 1 and line.get_marker() == "o"


def test_history_without_val(tmp_path, drawn):
    # Only the split plots care about val; lr and grad norms are left out.
    records = [
        {k: v for k, v in record(e, val=False).items() if "lr" not in k and "grad" not in k}
        for e in (1, 2, 3)
    ]
    paths = plots.plot_history(records, tmp_path)
    assert [p.name for p in paths] == ["losses.png", "metrics.png"]
    for p in paths:
        assert_png(p)
    for name in ("losses.png", "metrics.png"):
        assert all(labels_of(ax) == ["train"] for ax in drawn[name].axes)


def test_history_with_nan_and_null_values(tmp_path, drawn):
    records = [record(e, train_l2=math.nan, val_l2=math.nan) for e in range(1, 6)]
    records[1]["train_loss"] = math.nan
    records[2]["val_loss"] = None
    records[3]["train_loss"] = math.inf
    records[0]["grad_norm"] = math.nan
    records[4]["grad_norms"]["fc.w"] = math.nan
    records[2]["lr"] = "n/a"
    paths = plots.plot_history(records, tmp_path)
    assert len(paths) == 4
    for p in paths:
        assert_png(p)
    total, _, l2 = drawn["losses.png"].axes
    train, val = total.lines
    assert list(train.get_xdata()) == [1, 3, 5]
    assert list(val.get_xdata()) == [1, 2, 4, 5]
    assert np.isfinite(train.get_ydata()).all()
    # A term that is NaN throughout gets an empty panel that says so.
    assert len(l2.lines) == 0 and l2.texts[0].get_text() == "no finite values"
    assert list(drawn["lr.png"].axes[0].lines[0].get_xdata()) == [1, 2, 4, 5]


def test_loss_log_scale_only_over_two_decades():
    def run(train: list[float], val: list[float]) -> list[dict]:
        return [
            {"epoch": e, "train_loss": t, "val_loss": v}
            for e, (t, v) in enumerate(zip(train, val, strict=True))
        ]

    wide = run([1.0, 0.1, 0.01, 0.001], [1.0, 0.5, 0.2, 0.1])  # 3 decades
    narrow = run([2.0, 1.0, 0.5, 0.2], [2.1, 1.1, 0.6, 0.5])  # 1 decade
    with_zero = run([1.0, 0.1, 0.01, 0.001], [1.0, 0.5, 0.2, 0.0])  # no log of 0
    for recs, scale in ((wide, "log"), (narrow, "linear"), (with_zero, "linear")):
        fig = plots._losses_figure(recs)
        try:
            assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == scale
        finally:
            plt.close(fig)


def test_split_keys_separate_losses_from_metrics():
    r = {
        "epoch": 1,
        "lr": 0.1,
        "grad_norm": 1.0,
        "train_loss": 1.0,
        "train_mse": 0.5,
        "train_ce": 0.5,
        "train_accuracy_ce": 0.9,
        "train_mae_mse": 0.3,
        "val_rmse_mse": 0.4,
        "val_loss": 1.1,
        "train_grad_norms": {"x": 1.0},  # not a scalar: neither
        "train_note": "text",
        "val_l1": np.float32(0.1),
        "val_l2": None,
        "test_ce": math.nan,
    }
    terms, metrics = plots._split_keys([r])
    assert terms == ["loss", "mse", "ce", "l1", "l2"]
    assert metrics == ["accuracy_ce", "mae_mse", "rmse_mse"]


def test_history_skips_plots_without_data(tmp_path):
    records = [{k: v for k, v in record(e).items() if "accuracy" not in k and k != "lr"} for e in range(1, 4)]
    names = [p.name for p in plots.plot_history(records, tmp_path)]
    assert names == ["losses.png", "grad_norms.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grad_norms.png", "losses.png"]
    assert plots.plot_history([], tmp_path / "empty") == []


def test_lr_per_epoch():
    fig = plots._lr_figure([record(e) for e in range(1, 4)])
    try:
        assert fig.axes[0].get_xlabel() == "epoch"
        assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([0.1, 0.05, 0.1 / 3])
    finally:
        plt.close(fig)


def test_grad_norms_many_parameters_keeps_the_largest(tmp_path):
    n = 40
    records = [
        record(e, grad_norms={f"layer{i}.w": (i + 1) * 0.01 / e for i in range(n)}) for e in range(1, 6)
    ]
    # Just this one plot: plot_history's other three are covered above.
    fig = plots._grad_norms_figure(records)
    assert_png(plots._save(fig, tmp_path / "grad_norms.png"))
    total, per = fig.axes
    assert total.get_title() == "global gradient norm" and len(total.lines) == 1
    assert per.get_yscale() == "log"
    assert len(per.lines) == plots.MAX_GRAD_NORM_LINES
    assert set(labels_of(per)) == {f"layer{i}.w" for i in range(n - 12, n)}
    assert f"12 largest of {n}" in per.get_title()


def _panels(fig) -> dict[str, list]:
    """The visible histogram panels of each section (parameters, activations), in order."""
    out = {}
    for sf in fig.subfigs:
        kind = sf.get_suptitle().split(":")[0]
        out[kind] = [ax for ax in sf.axes if ax.get_visible()]
    return out


def test_histograms(tmp_path, drawn):
    rng = np.random.default_rng(0)
    params = {
        "conv1.w": rng.standard_normal((8, 3, 3, 3)),
        "conv1.b": np.zeros(8),
        "bn.running_var": np.ones(8),
    }
    acts = {"conv1": rng.standard_normal((4, 8, 6, 6)).astype(np.float32)}
    acts["relu"] = np.maximum(acts["conv1"], 0)
    acts["relu"][0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    path = plots.plot_histograms(3, params, acts, tmp_path, buffers=["bn.running_var"])
    assert path == tmp_path / "histograms" / "epoch_003.png"
    assert_png(path)
    fig = drawn["epoch_003.png"]
    panels = _panels(fig)
    assert list(panels) == ["parameters", "activations"]  # separate sections, parameters first
    titles = {k: [ax.get_title() for ax in v] for k, v in panels.items()}
    assert [t.split(" ")[0] for t in titles["parameters"]] == ["conv1.w", "conv1.b", "bn.running_var"]
    assert titles["parameters"][0].startswith("conv1.w [8×3×3×3]")
    assert titles["parameters"][2].startswith("bn.running_var (buffer) [8]")
    assert "grey: buffers" in fig.subfigs[0].get_suptitle()
    assert [t.split(" ")[0] for t in titles["activations"]] == ["conv1", "relu"]
    relu = titles["activations"][1]
    finite = acts["relu"][np.isfinite(acts["relu"])]
    assert f"mean {finite.mean():.3g}" in relu and "3 non-finite" in relu
    assert "std 0" in titles["parameters"][1]
    assert all(ax.title.get_fontsize() >= 8 for v in panels.values() for ax in v)  # legible


def test_histograms_spread_over_the_network_in_order(tmp_path, drawn):
    params = {f"p{i}": np.arange(i + 1, dtype=np.float64) for i in range(40)}
    acts = {"huge": np.ones(1000), "nan": np.full(50, np.nan)}
    assert_png(plots.plot_histograms(12, params, acts, tmp_path))
    fig = drawn["epoch_012.png"]
    panels = _panels(fig)
    names = [ax.get_title().split(" ")[0] for ax in panels["parameters"]]
    assert len(names) == plots.MAX_HISTOGRAM_PANELS
    assert names[0] == "p0" and names[-1] == "p39"  # the first and the last layer
    assert [int(n[1:]) for n in names] == sorted(int(n[1:]) for n in names)  # network order
    assert "30 spread over the network shown" in fig.subfigs[0].get_suptitle()
    assert [ax.get_title().split(" ")[0] for ax in panels["activations"]] == ["huge", "nan"]
    assert panels["activations"][1].texts[0].get_text() == "no finite values"


def test_histograms_with_no_tensors(tmp_path):
    assert_png(plots.plot_histograms(0, {}, {}, tmp_path), min_w=200, min_h=100)


def test_confusion_matrix_by_hand_and_sklearn():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 3])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 0, 3])
    expected = np.array([[1, 1, 0, 0], [0, 2, 1, 0], [1, 0, 1, 0], [0, 0, 0, 1]])
    cm = plots.confusion_matrix(y_true, y_pred, 4)
    assert cm.dtype == np.int64 and cm.shape == (4, 4)
    np.testing.assert_array_equal(cm, expected)
    # A class that never occurs still gets its row and column.
    np.testing.assert_array_equal(plots.confusion_matrix(y_true, y_pred, 5)[:4, :4], expected)
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 7, size=(50, 9)), rng.integers(0, 7, size=(50, 9))
    np.testing.assert_array_equal(
        plots.confusion_matrix(t, p, 7), sk_confusion_matrix(t.ravel(), p.ravel(), labels=range(7))
    )


@pytest.mark.parametrize(
    ("y_true", "y_pred"), [([0, 3], [0, 1]), ([0, 1], [0, -1]), ([0, 1], [0]), ([0.5, 1], [0, 1])]
)
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred):
    with pytest.raises(ValueError):
        plots.confusion_matrix(np.array(y_true), np.array(y_pred), 3)


def test_plot_confusion(tmp_path, drawn):
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # the last class never occurs
    path = plots.plot_confusion(cm, tmp_path / "sub" / "cm.png", labels=["cat", "dog", "eel"])
    assert_png(path)
    ax = drawn["cm.png"].axes[0]
    assert ax.get_title() == "accuracy 72.73% of 11"
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "2", "3", "0", "0", "0", "0"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "eel"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[5 / 6, 1 / 6, 0], [0.4, 0.6, 0], [0, 0, 0]])
    with pytest.raises(ValueError):
        plots.plot_confusion(cm, tmp_path / "x.png", labels=["a"])


def test_a_failed_drawing_leaves_no_figure(tmp_path, monkeypatch):
    def broken(records):
        plt.subplots()  # fails after opening its figure
        raise RuntimeError("boom")

    monkeypatch.setattr(plots, "_losses_figure", broken)
    with pytest.raises(RuntimeError, match="boom"):
        plots.plot_history([record(1)], tmp_path)
    assert plt.get_fignums() == []


def test_plot_confusion_many_classes(tmp_path):
    rng = np.random.default_rng(2)
    cm = plots.confusion_matrix(rng.integers(0, 100, 5000), rng.integers(0, 100, 5000), 100)
    assert_png(plots.plot_confusion(cm, tmp_path / "cm.png"))


def range_test(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic LR range test: a sigmoid drop in log LR centred at 1e-3,
    divergence from 1e-1, a little noise."""
    lrs = np.logspace(-6, 0, n)
    x = np.log10(lrs)
    loss = 2.3 - 2.0 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, np.expm1(8 * (x + 1)), 0.0)
    return lrs, loss + np.random.default_rng(seed).normal(0, 0.02, n)


def test_suggest_lr_finds_the_steepest_drop():
    lrs, losses = range_test()
    s = plots.suggest_lr(lrs, losses)
    assert s is not None and abs(math.log10(s) - (-3)) < 0.5, s
    # Same answer when the run blew up and logged NaN / inf after divergence.
    blown = losses.copy()
    blown[lrs > 0.3] = np.nan
    blown[-1] = np.inf
    assert plots.suggest_lr(lrs, blown) == s


def test_suggest_lr_ignores_the_diverged_tail():
    # The explosion past 1e-1 is far steeper than the useful drop; only the
    # 4x-the-minimum cut keeps its falling side from being chosen.
    lrs = np.logspace(-6, 0, 500)
    x = np.log10(lrs)
    loss = 2.3 - 2.0 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, 1e4 * np.sin(40 * (x + 1)) ** 2, 0.0)
    s = plots.suggest_lr(lrs, loss)
    assert s is not None and s < 0.1


def test_suggest_lr_none_cases():
    assert plots.suggest_lr(np.array([1e-4, 1e-3, 1e-2]), np.array([2.0, 1.0, 0.5])) is None
    lrs = np.logspace(-5, -1, 50)
    assert plots.suggest_lr(lrs, np.linspace(1.0, 1.5, 50)) is None  # the loss never falls
    assert plots.suggest_lr(lrs, np.full(50, 0.7)) is None  # nor when it is flat
    with pytest.raises(ValueError):
        plots.suggest_lr(lrs, np.ones(49))


def test_plot_lr_find(tmp_path, drawn):
    lrs, losses = range_test()
    s = plots.suggest_lr(lrs, losses)
    assert_png(plots.plot_lr_find(lrs, losses, s, tmp_path / "lr_find.png"))
    ax = drawn["lr_find.png"].axes[0]
    assert ax.get_xscale() == "log"
    assert labels_of(ax) == ["loss", "smoothed (running median)", f"suggested {s:.2e}"]
    assert ax.lines[2].get_xdata()[0] == pytest.approx(s)
    # The diverged tail (up to e^8) is clipped out of view.
    assert ax.get_ylim()[1] < 10
    blown = losses.copy()
    blown[lrs > 0.3] = np.nan
    assert_png(plots.plot_lr_find(lrs, blown, None, tmp_path / "none.png"))
    assert_png(plots.plot_lr_find(lrs[:3], losses[:3], None, tmp_path / "short.png"))


def test_plot_images(tmp_path, drawn):
    rng = np.random.default_rng(0)
    rows = {
        "noisy": rng.random((10, 1, 6, 6)),
        "out": rng.random((10, 1, 6, 6)),
        "rgb": rng.random((10, 3, 6, 6)),
    }
    path = plots.plot_images(rows, tmp_path / "images.png")
    assert_png(path, min_h=100)
    axes = drawn["images.png"].axes
    assert len(axes) == 3 * plots.MAX_IMAGES  # capped columns, one row per entry
    assert [axes[r * plots.MAX_IMAGES].get_ylabel() for r in range(3)] == ["noisy", "out", "rgb"]
    shown = axes[0].images[0].get_array()
    assert shown.shape == (6, 6) and shown.min() == 0 and shown.max() == 1  # scaled for display
    assert axes[-1].images[0].get_array().shape == (6, 6, 3)
