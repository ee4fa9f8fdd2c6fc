"""The safetensors codec: netc's own reader and writer of the format (the ``safetensors``
package is only a test oracle), byte-for-byte like the reference writer, with an integrity
checksum (sha256 of header and data) in the file's metadata, verified on every read. numpy
and the standard library only; nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import atomic
from .errors import CheckpointError, warn

# The integrity checksum: in a safetensors file's __metadata__. It covers everything but itself
# (see _tensors_digest).
CHECKSUM_KEY = "netc_sha256"

# safetensors dtype names -> numpy little-endian dtypes. The list is in the
# reference writer's dtype order (ascending); it lays tensors out by descending
# dtype, then by name, so every tensor starts aligned to its item size.
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "C64": np.dtype("<c8"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
_RANK = {name: i for i, name in enumerate(_DTYPES)}
_BY_NUMPY = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}
# The reference refuses headers above 100 MB; a larger length is damage, not data.
_MAX_HEADER = 100_000_000


def _dtype_name(a: np.ndarray, name: str) -> str:
    dt = a.dtype
    st = _BY_NUMPY.get((dt.kind, dt.itemsize))
    if st is None:
        raise TypeError(f"tensor '{name}': dtype {dt} has no safetensors equivalent")
    return st


def _prepare(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> tuple[bytes, list]:
    """The padded header and the tensors in file order, as little-endian C-order arrays."""
    header, entries = _header(tensors, metadata)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, entries


def _header(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> tuple[dict, list]:
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensor name {name!r} is not allowed in a safetensors file")
        a = np.asarray(value)
        st = _dtype_name(a, name)
        a = np.asarray(a, dtype=_DTYPES[st], order="C")  # not ascontiguousarray: it makes 0-d 1-d
        entries.append((st, name, a))
    entries.sort(key=lambda e: (-_RANK[e[0]], e[1]))
    header: dict[str, Any] = {}
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"safetensors metadata must map str to str, got {k!r}: {v!r}")
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for st, name, a in entries:
        header[name] = {"dtype": st, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    return header, entries


def _chunks(entries: list) -> Iterator[memoryview]:
    for _, _, a in entries:
        if a.nbytes:
            yield memoryview(a.reshape(-1)).cast("B")


def _tensors_digest(header: Mapping[str, Any], data: Iterable[Any]) -> str:
    """sha256 of a safetensors file's content: its header as canonical JSON (without the
    checksum, without an empty __metadata__), then the tensor bytes. The header is covered
    too: a flipped bit in a dtype or shape would reinterpret intact bytes."""
    head = dict(header)
    meta = {k: v for k, v in (head.pop("__metadata__", None) or {}).items() if k != CHECKSUM_KEY}
    if meta:
        head["__metadata__"] = meta
    h = hashlib.sha256(json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    for chunk in data:
        h.update(chunk)
    return h.hexdigest()


def with_checksum(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``metadata`` plus the checksum of the file that ``tensors`` and it make."""
    meta = {k: v for k, v in (metadata or {}).items() if k != CHECKSUM_KEY}
    header, entries = _header(tensors, meta)
    return {**meta, CHECKSUM_KEY: _tensors_digest(header, _chunks(entries))}


def write_stream(f: BinaryIO, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> str:
    """Write a safetensors image to ``f``; returns its sha256 hex digest."""
    head, entries = _prepare(tensors, metadata)
    h = hashlib.sha256(head)
    f.write(head)
    for _, _, a in entries:
        if a.nbytes:
            chunk = memoryview(a.reshape(-1)).cast("B")
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def write_safetensors(
    path: str | Path,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
    *,
    checksum: bool = True,
) -> None:
    """Write ``tensors`` (and str->str ``metadata``) to ``path`` in the safetensors format,
    atomically: ``path`` holds either its old content or the complete new file. With
    ``checksum`` the metadata also carries the content's sha256, verified on every read."""
    final = Path(path)
    if checksum:
        metadata = with_checksum(tensors, metadata)
    tmp, _ = atomic.write_temp(final, lambda f: write_stream(f, tensors, metadata))
    atomic.commit(tmp, final)


def read_bytes(path: Path) -> bytearray:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = bytearray(size)
            got = f.readinto(buf)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if got != size:
        raise CheckpointError(f"cannot read {path}: it changed size while being read")
    return buf


def is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse(buf: bytearray, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], bool]:
    """Tensors, metadata (without the checksum) and whether a checksum was verified."""

    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a valid safetensors file: {reason}")

    size = len(buf)
    if size < 8:
        raise bad(f"too short ({size} bytes; the 8-byte header length alone needs 8)")
    n = int.from_bytes(buf[:8], "little")
    if n > size - 8:
        raise bad(f"header length {n} goes beyond the end of the file ({size} bytes; truncated?)")
    if n > _MAX_HEADER:
        raise bad(f"header length {n} exceeds the {_MAX_HEADER}-byte limit")
    try:
        header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"bad JSON header ({e})") from None
    if not isinstance(header, dict):
        raise bad("the JSON header is not an object")
    raw_header = dict(header)
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")
    start = 8 + n
    data_len = size - start
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise bad(f"tensor '{name}': entry is not an object")
        st, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if st not in _DTYPES:
            raise bad(f"tensor '{name}': unknown dtype {st!r} (known: {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(is_count(d) for d in shape):
            raise bad(f"tensor '{name}': shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offs, list) and len(offs) == 2 and all(is_count(o) for o in offs)):
            raise bad(f"tensor '{name}': data_offsets {offs!r} is not a pair of non-negative integers")
        begin, end = offs
        if begin > end or end > data_len:
            raise bad(
                f"tensor '{name}': data_offsets [{begin},{end}] out of range (data is {data_len} bytes)"
            )
        numel = math.prod(shape)
        want = numel * _DTYPES[st].itemsize
        if end - begin != want:
            raise bad(
                f"tensor '{name}': {end - begin} bytes of data, but {st} {shape} needs "
                f"{numel} x {_DTYPES[st].itemsize} = {want}"
            )
        spans.append((begin, end, name, st, shape, numel))
    # Like the reference: the tensors tile the data exactly, no overlap, no gap, no tail.
    spans.sort()
    cursor, prev = 0, None
    for begin, end, name, *_ in spans:
        if begin < cursor:
            raise bad(f"tensor '{name}' overlaps tensor '{prev}' (bytes {begin}..{cursor})")
        if begin > cursor:
            raise bad(f"data bytes {cursor}..{begin} belong to no tensor (before tensor '{name}')")
        cursor, prev = end, name
    if cursor != data_len:
        raise bad(f"trailing garbage: {data_len - cursor} bytes after the last tensor")
    want = metadata.pop(CHECKSUM_KEY, None)
    if want is not None:
        got = _tensors_digest(raw_header, [memoryview(buf)[start:]])
        if got != want:
            raise CheckpointError(
                f"{path}: checksum mismatch: the file is corrupt (sha256 {got[:16]}… of its content, "
                f"{want[:16]}… recorded in its header)"
            )
    tensors: dict[str, np.ndarray] = {}
    for begin, _, name, st, shape, numel in spans:
        dt = _DTYPES[st]
        if numel == 0:
            a = np.empty(shape, dt.newbyteorder("="))
        else:
            # Views into the one buffer read from disk: no second copy of the data.
            a = np.frombuffer(buf, dtype=dt, count=numel, offset=start + begin).reshape(shape)
            if not dt.isnative:
                a = a.astype(dt.newbyteorder("="))
        tensors[name] = a
    order = {name: i for i, name in enumerate(header)}
    return dict(sorted(tensors.items(), key=lambda kv: order[kv[0]])), metadata, want is not None


def read_safetensors(
    path: str | Path, *, unverified: str = "accept"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors (writable, native byte order) and metadata (without the checksum) of a
    safetensors file. A checksum in the file is always verified. A file without one (written
    by another tool, or by netc before checksums) is read (``unverified="accept"``), read with
    a warning ("warn") or refused ("refuse"). Raises CheckpointError naming the file and the
    reason for anything malformed or corrupt."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory, not a safetensors file")
    tensors, metadata, verified = parse(read_bytes(p), p)
    if not verified and unverified != "accept":
        why = f"{p} carries no checksum (written by another tool or an older netc)"
        if unverified == "refuse":
            raise CheckpointError(f"{why}; it cannot be verified")
        warn(f"{why}: its integrity cannot be verified")
    return tensors, metadata
