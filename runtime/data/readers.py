"""The file readers: .npy, .npz, CSV and IDX (each plain or gzip'd), NumPy only, no pickle.

Each reader turns a file into arrays or raises :class:`DataError` with one line naming the file
(and line, column or archive member); a damaged or lying header is a message before anything is
allocated, and a gzip bomb or an array beyond the available memory is refused the same way.
"""

from __future__ import annotations

import ast
import io
import lzma
import math
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ...compiler import host
from ...compiler.report.summary import human_bytes
from .errors import DataError, shape_str

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


def read_bytes(path: Path) -> bytes:
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
    buf = read_bytes(path)
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
            f"{path}: IDX file {what}: {len(buf)} bytes, "
            f"the header {shape_str(dims)} {dtype.name} needs {want}"
        )
    try:
        return np.frombuffer(buf, dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))
    except ValueError:  # a dimension of 0 next to ones beyond what NumPy can index
        raise DataError(
            f"{path}: the IDX header's dimensions {shape_str(dims)} do not form an array"
        ) from None


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
            f"the header declares {shape_str(shape)} {dtype.name} ({nbytes:,} bytes) "
            f"but {have:,} bytes follow it"
        )
    _check_fits(nbytes, where)
    try:
        out = np.empty(shape[::-1] if fortran else shape, dtype)
    except ValueError:  # more than NumPy's 64 dimensions, or a 0 next to sizes it cannot index
        raise bad(f"NumPy cannot make an array of the header's shape {shape_str(shape)}") from None
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


def read_npz(path: Path) -> dict[str, np.ndarray]:
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


def read_npy(path: Path) -> np.ndarray:
    """A single .npy array (gzip'd or not, by content)."""
    try:
        with path.open("rb") as f:
            head = f.read(6)
            if head[:2] == b"\x1f\x8b":
                data = read_bytes(path)
                return _npy_array(io.BytesIO(data), len(data), str(path))
            if head[:4] == b"PK\x03\x04":
                raise DataError(f"{path}: an .npz archive, not a single .npy array")
            f.seek(0)
            return _npy_array(f, os.fstat(f.fileno()).st_size, str(path))
    except OSError as e:
        raise DataError(f"{path}: cannot read the file: {e.strerror or type(e).__name__}") from None


def read_csv(
    path: Path, header: bool | None, delimiter: str
) -> tuple[np.ndarray, list[str] | None, np.ndarray]:
    """(table [rows, columns] float64, the header's names or None, each row's file line)."""
    raw = read_bytes(path)
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
