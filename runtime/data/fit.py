"""Fitting a source's arrays to the spec's inputs, and reading `netc predict` input files.

``fit_arrays`` binds each spec input to one array of a :class:`Raw` (by ``data.columns``, by
name, or by position: features first, targets last), reshapes it only where that is
unambiguous (never a silent transpose), casts it to the input's dtype with NaN/Inf and
integer checks, and range-checks labels. ``read_inputs`` reads a predict/eval input file
into the same checked arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np

from .errors import DataError, shape_str
from .readers import read_bytes, read_csv, read_idx, read_npy, read_npz
from .sources import Raw, csv_raw


def _bind(
    raw: Raw, inputs: dict[str, dict], columns: dict, only: Collection[str] | None = None
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
        if name in columns and not raw.columns_applied:
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
        f"input '{name}' expects per-sample shape {shape_str(want)}, but {what} has "
        f"{shape_str(have)} per sample ({shape_str(a.shape)} in all; {via}{hint})"
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


def _check_range(
    a: np.ndarray, name: str, k: int, what: str, row: Callable[[int], str], ignore: int | None = None
) -> None:
    bad = (a < 0) | (a >= k)
    if ignore is not None:
        bad &= a != ignore  # the loss's ignore_index: a label position that is no sample
    if bad.any():
        i = _first_bad(bad)
        v = a[i].reshape(-1)[np.flatnonzero(bad[i].reshape(-1))[0]]
        raise DataError(
            f"{what} (input '{name}'): label {v} at {row(i)} is outside [0, {k}) "
            f"(the network predicts {k} classes)"
        )


def fit_arrays(
    raw: Raw,
    inputs: dict[str, dict],
    columns: dict,
    classes: dict,
    only: Collection[str] | None = None,
    origin: str = "",
    ignore: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """raw's arrays bound to the inputs (those in ``only``, default all), shape-, dtype- and
    range-checked (a label equal to its loss's ``ignore`` value passes); ``origin`` (a spec key or
    a flag) ends the messages that name no input."""
    binding = _bind(raw, inputs, columns, only)
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
            _check_range(a, name, int(classes[name]), what, row, (ignore or {}).get(name))
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
    ignore: dict[str, int] | None = None,
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
        arrays = read_npz(path)
        raw = Raw(arrays, where, "x" if "x" in arrays else None, "y" if "y" in arrays else None)
        keys = {k: v for k, v in columns.items() if isinstance(v, str) and v in arrays}
    elif kind.endswith(".npy"):
        raw = Raw({"<npy>": read_npy(path)}, where, "<npy>", describe={"<npy>": where}, via=_ONE_ARRAY)
    elif kind.endswith(".csv"):
        table, header, lines = read_csv(path, None, ",")
        size = math.prod(inputs[names[0]]["shape"])
        if table.shape[1] == size:
            describe = {"<row>": f"{path} columns 0..{size - 1}"}
            raw = Raw({"<row>": table}, where, "<row>", describe=describe, lines=lines, via=_ONE_ARRAY)
        else:
            raw = csv_raw(path, table, header, lines, inputs, columns)
    elif read_bytes(path)[:2] == b"\x00\x00":
        raw = Raw(
            {"<idx>": read_idx(path)}, where, "<idx>", describe={"<idx>": f"{path} (IDX)"}, via=_ONE_ARRAY
        )
    else:
        raise DataError(f"{path}: unknown input format (use .npz, .npy, .csv or an IDX file) ({flag})")
    only = names if need is None else [n for n in names if n in need]
    return fit_arrays(raw, inputs, keys, dict(classes or {}), only, origin=flag, ignore=ignore)
