"""Checkpoints for exact resume: safetensors tensors plus a JSON commit record.

A checkpoint ``<tag>`` in a checkpoints directory is two files:

- ``<tag>.<hash16>.safetensors`` — the tensors (parameters by name, optimizer state as
  ``optim/<slot>/<param>``, extra arrays such as ``data/mean``), written by the
  safetensors writer below; ``<hash16>`` is the first 16 hex digits of the file's sha256.
- ``<tag>.json`` — the commit record: format, tag, the tensors file's name, byte size and
  sha256, a save sequence number and the trainer's metadata.

Every file is written to a temporary name in the same directory, flushed, fsynced,
renamed over its final name with ``os.replace`` and the directory fsynced. The record
is written only after its tensors file is durable, and ``latest.json`` (a pointer to
the newest record) only after the record, so a SIGKILL or power cut at any moment
leaves the previous checkpoint complete and findable. The tensors file carries its
hash in its name because a tag can be saved again ("best", "last"): the new tensors
must not replace the old ones before the new record commits them. docs/checkpoints.md
describes the layout, the fields and every refusal.

numpy and the standard library only: netc reads and writes safetensors itself (the
``safetensors`` package is a test oracle), and nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

FORMAT = 1
RECORD_KIND = "netc-checkpoint"
POINTER_KIND = "netc-checkpoint-pointer"
LATEST = "latest.json"
OPTIM_PREFIX = "optim/"
# The integrity checksum: in a safetensors file's __metadata__, in a JSON file as a top-level
# key. It covers everything but itself (see _tensors_digest and _json_digest).
CHECKSUM_KEY = "netc_sha256"
JSON_CHECKSUM_KEY = "checksum"

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
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TENSORS_RE = re.compile(r"^(?P<tag>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<hash>[0-9a-f]{16})\.safetensors$")
_TMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class CheckpointError(Exception):
    """A checkpoint or safetensors file that cannot be used; the message names the file."""


@dataclass
class Checkpoint:
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path  # the commit record (<tag>.json)
    tag: str = ""
    sha256: str = ""
    record: dict[str, Any] = field(default_factory=dict)


# -- safetensors -------------------------------------------------------------------


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


def _with_checksum(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``metadata`` plus the checksum of the file that ``tensors`` and it make."""
    meta = {k: v for k, v in (metadata or {}).items() if k != CHECKSUM_KEY}
    header, entries = _header(tensors, meta)
    return {**meta, CHECKSUM_KEY: _tensors_digest(header, _chunks(entries))}


def _write_stream(f: BinaryIO, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None) -> str:
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


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _write_temp(final: Path, write: Any) -> tuple[Path, Any]:
    """Run ``write(f)`` into a durable temporary file beside ``final``; returns (temp, result)."""
    tmp = _temp_path(final)
    try:
        with open(tmp, "xb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a full disk, above all: name the file being written, not its temporary
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(final)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, result


def _commit(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    _fsync_dir(final.parent)


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
        metadata = _with_checksum(tensors, metadata)
    tmp, _ = _write_temp(final, lambda f: _write_stream(f, tensors, metadata))
    _commit(tmp, final)


def _read_bytes(path: Path) -> bytearray:
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


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _parse(buf: bytearray, path: Path) -> tuple[dict[str, np.ndarray], dict[str, str], bool]:
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
        if not isinstance(shape, list) or not all(_int(d) for d in shape):
            raise bad(f"tensor '{name}': shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_int(o) for o in offs)):
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


def warn(message: str) -> None:
    """A warning for the person running netc: one line on stderr."""
    print(f"netc: warning: {message}", file=sys.stderr)


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
    tensors, metadata, verified = _parse(_read_bytes(p), p)
    if not verified and unverified != "accept":
        why = f"{p} carries no checksum (written by another tool or an older netc)"
        if unverified == "refuse":
            raise CheckpointError(f"{why}; it cannot be verified")
        warn(f"{why}: its integrity cannot be verified")
    return tensors, metadata


# -- metadata -------------------------------------------------------------------------


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as plain JSON data (numpy scalars become Python numbers), or TypeError.
    Python's json writes ints of any size and floats by shortest repr, so both round-trip
    exactly; NaN and infinities are written as NaN/Infinity (Python's JSON extension)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating) and obj.dtype.itemsize <= 8:
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                # json would silently turn 3 into "3"; the round trip would not be exact.
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON data (store arrays as tensors)")


def _dump_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode()


def _json_digest(obj: Mapping[str, Any]) -> str:
    """sha256 of a JSON object as canonical JSON, without its checksum key. Floats print by
    their shortest repr, so a file read back digests to the same value."""
    body = {k: v for k, v in obj.items() if k != JSON_CHECKSUM_KEY}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` atomically, with its checksum (verified by ``_load_json``)."""
    data = _dump_json({**obj, JSON_CHECKSUM_KEY: _json_digest(obj)})
    tmp, _ = _write_temp(path, lambda f: f.write(data))
    _commit(tmp, path)


def _load_json(path: Path, what: str, unverified: str = "accept") -> dict[str, Any]:
    """A JSON object file; its checksum, if it has one, verified (and removed). Without one
    (an older netc wrote it, or a person): read, with a warning when ``unverified="warn"``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} {path} is not UTF-8 text") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{what} {path} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} is not a JSON object")
    want = obj.pop(JSON_CHECKSUM_KEY, None)
    if want is None:
        if unverified == "warn":
            warn(
                f"{what} {path} carries no checksum (written by an older netc?): "
                "its integrity cannot be verified"
            )
    elif want != _json_digest(obj):
        raise CheckpointError(
            f"{what} {path}: checksum mismatch: the file is corrupt (or was edited by hand)"
        )
    return obj


def _check_format(obj: dict[str, Any], kind: str, path: Path) -> None:
    if obj.get("kind") != kind:
        raise CheckpointError(f'{path} is not a netc checkpoint file (no "kind": "{kind}")')
    fmt = obj.get("format")
    if fmt != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {fmt!r}; this netc reads format {FORMAT} "
            "(a checkpoint from a newer netc needs that netc)"
        )


# -- checkpoints ------------------------------------------------------------------------


def _records(directory: Path) -> dict[str, dict[str, Any]]:
    """Readable commit records of ``directory`` by tag; damaged ones are skipped here
    (loading one by name still reports its damage)."""
    out = {}
    for p in directory.glob("*.json"):
        if p.name == LATEST or not _TAG_RE.match(p.stem):
            continue
        try:
            rec = _load_json(p, "checkpoint record")
            _check_format(rec, RECORD_KIND, p)
        except CheckpointError:
            continue
        if isinstance(rec.get("seq"), int) and isinstance(rec.get("tensors"), dict):
            out[p.stem] = rec
    return out


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process: not ours to judge
    return True


def _sweep_temps(directory: Path) -> None:
    # Temporary files of a writer that was killed; a live writer's are left alone.
    for p in directory.iterdir():
        m = _TMP_RE.match(p.name)
        if m and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            p.unlink(missing_ok=True)


def _sweep_orphans(directory: Path, records: dict[str, dict[str, Any]]) -> None:
    # Tensors files no record names: superseded by a newer save of their tag, or
    # written by a save that was killed before its commit.
    named = {rec["tensors"].get("file") for rec in records.values()}
    for p in directory.glob("*.safetensors"):
        m = _TENSORS_RE.match(p.name)
        if not m or p.name in named:
            continue
        rec_path = directory / f"{m['tag']}.json"
        if rec_path.exists() and m["tag"] not in records:
            continue  # its record exists but is unreadable: keep the evidence
        p.unlink(missing_ok=True)


def _delete(directory: Path, tag: str, rec: dict[str, Any]) -> None:
    # Record first: once it is gone the checkpoint no longer exists, whatever follows.
    (directory / f"{tag}.json").unlink(missing_ok=True)
    name = rec["tensors"].get("file")
    if isinstance(name, str) and _TENSORS_RE.match(name):
        (directory / name).unlink(missing_ok=True)


def save_checkpoint(
    directory: str | Path,
    tag: str,
    tensors: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    *,
    keep: int | None = None,
) -> Path:
    """Save a checkpoint ``tag`` into ``directory`` (created if needed) and point
    ``latest.json`` at it; returns the path of its commit record ``<tag>.json``.

    ``tensors``: parameters by name ("conv1.w"), optimizer state as "optim/<slot>/<param>",
    other arrays with a "/" in their name ("data/mean"). ``meta``: JSON data (any-size ints,
    exact floats). ``keep``: after saving, keep only the ``keep`` newest checkpoints whose
    tag does not start with "best" (those are never pruned). One writer per directory."""
    if not isinstance(tag, str) or not _TAG_RE.match(tag) or tag == LATEST.removesuffix(".json"):
        raise ValueError(f"checkpoint tag {tag!r}: use letters, digits, '_' and '-' (not 'latest')")
    if keep is not None and keep < 1:
        raise ValueError(f"keep={keep}: keep at least the checkpoint being saved")
    plain_meta = _plain(dict(meta), "meta")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _sweep_temps(d)
    records = _records(d)
    seq = max((r["seq"] for r in records.values()), default=0) + 1
    # The file's hash names it, so it is known only once written: write under a
    # temporary name, then rename to the hashed one.
    probe = d / f"{tag}.safetensors"
    counter: dict[str, int] = {}

    header_meta = _with_checksum(tensors, {"netc_checkpoint": str(FORMAT), "tag": tag})

    def write(f: BinaryIO) -> str:
        digest = _write_stream(f, tensors, header_meta)
        counter["bytes"] = f.tell()
        return digest

    tmp, digest = _write_temp(probe, write)
    tensors_name = f"{tag}.{digest[:16]}.safetensors"
    _commit(tmp, d / tensors_name)
    record = {
        "format": FORMAT,
        "kind": RECORD_KIND,
        "tag": tag,
        "seq": seq,
        "tensors": {"file": tensors_name, "bytes": counter["bytes"], "sha256": digest, "count": len(tensors)},
        "meta": plain_meta,
    }
    record_path = d / f"{tag}.json"
    _write_json(record_path, record)
    _write_json(d / LATEST, {"format": FORMAT, "kind": POINTER_KIND, "checkpoint": record_path.name,
                             "tag": tag, "seq": seq})  # fmt: skip
    records[tag] = record
    if keep is not None:
        others = sorted((r["seq"], t) for t, r in records.items() if t != tag and not t.startswith("best"))
        room = keep if tag.startswith("best") else keep - 1
        for _, t in others[: max(0, len(others) - room)]:
            _delete(d, t, records.pop(t))
    _sweep_orphans(d, records)
    return record_path


def has_checkpoint(directory: str | Path) -> bool:
    """Whether a checkpoints directory holds a checkpoint, or something claiming to be one
    (a damaged record too: loading it reports the damage, it is never taken for none)."""
    d = Path(directory)
    return d.is_dir() and ((d / LATEST).exists() or any(_TAG_RE.match(p.stem) for p in d.glob("*.json")))


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary file of netc's atomic writes."""
    return bool(_TMP_RE.match(Path(path).name))


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a checkpoint's tensors file (<tag>.<hash16>.safetensors)."""
    return bool(_TENSORS_RE.match(Path(path).name))


def _resolve(path: Path) -> Path:
    """The commit record ``path`` designates (see load_checkpoint)."""
    if path.is_dir():
        d = path
        if not (d / LATEST).exists() and not _records(d) and (d / "checkpoints").is_dir():
            d = d / "checkpoints"
        if (d / LATEST).exists():
            return _from_pointer(d / LATEST)
        records = _records(d)
        if not records:
            raise CheckpointError(f"no checkpoints in {path} (no {LATEST}, no <tag>.json records)")
        # No pointer (killed between the first record and its pointer): newest record.
        tag = max(records, key=lambda t: records[t]["seq"])
        return d / f"{tag}.json"
    if path.name == LATEST:
        return _from_pointer(path)
    if path.suffix == ".json":
        return path
    if path.suffix == ".safetensors":
        m = _TENSORS_RE.match(path.name)
        tag = m["tag"] if m else path.name.split(".", 1)[0]
        record_path = path.with_name(f"{tag}.json")
        if not path.exists():
            raise CheckpointError(f"{path} does not exist")
        rec = _load_json(record_path, "checkpoint record") if record_path.exists() else {}
        if rec.get("tensors", {}).get("file") != path.name:
            raise CheckpointError(
                f"{path}: no commit record names this file ({record_path.name} "
                f"{'names another' if rec else 'is missing'}), so it is not a complete checkpoint; "
                "read its tensors with read_safetensors if you need them"
            )
        return record_path
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    raise CheckpointError(f"{path}: expected a checkpoint .json, a .safetensors file or a directory")


def _from_pointer(pointer: Path) -> Path:
    obj = _load_json(pointer, "checkpoint pointer")
    _check_format(obj, POINTER_KIND, pointer)
    name = obj.get("checkpoint")
    if not isinstance(name, str) or not _TAG_RE.match(name.removesuffix(".json")):
        raise CheckpointError(f"{pointer} names no checkpoint record")
    target = pointer.with_name(name)
    if not target.exists():
        others = sorted(f"{t}.json" for t in _records(pointer.parent))
        raise CheckpointError(
            f"{pointer} points to {name}, which does not exist; "
            f"checkpoints present: {', '.join(others) or 'none'}"
        )
    return target


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and verify a checkpoint. ``path``: a ``<tag>.json`` record, a checkpoint's
    ``.safetensors`` file, ``latest.json``, a checkpoints directory, or a run directory
    holding ``checkpoints/`` (directories load what ``latest.json`` names). The tensors
    file's size and sha256 must match the record: any damage raises CheckpointError."""
    record_path = _resolve(Path(path))
    rec = _load_json(record_path, "checkpoint record", unverified="warn")
    _check_format(rec, RECORD_KIND, record_path)
    info = rec.get("tensors")
    if not (isinstance(info, dict) and isinstance(info.get("file"), str) and _int(info.get("bytes"))
            and isinstance(info.get("sha256"), str) and isinstance(rec.get("meta"), dict)):  # fmt: skip
        raise CheckpointError(f"checkpoint record {record_path} lacks tensors file, bytes, sha256 or meta")
    if Path(info["file"]).name != info["file"]:
        raise CheckpointError(f"checkpoint record {record_path} names a file outside its directory")
    tpath = record_path.with_name(info["file"])
    if not tpath.exists():
        raise CheckpointError(f"{tpath} (named by {record_path.name}) does not exist")
    buf = _read_bytes(tpath)
    if len(buf) != info["bytes"]:
        raise CheckpointError(
            f"{tpath} is {len(buf)} bytes, its record {record_path.name} says {info['bytes']} "
            f"({'truncated' if len(buf) < info['bytes'] else 'grown'} since it was saved)"
        )
    digest = hashlib.sha256(buf).hexdigest()
    if digest != info["sha256"]:
        raise CheckpointError(
            f"{tpath}: checksum mismatch: the file is corrupt (sha256 {digest[:16]}… differs from "
            f"{info['sha256'][:16]}… recorded in {record_path.name})"
        )
    tensors, _, _ = _parse(buf, tpath)
    return Checkpoint(tensors, rec["meta"], record_path, str(rec.get("tag", "")), digest, rec)


# -- plans ---------------------------------------------------------------------------------


def spec_hash(text: str) -> str:
    """sha256 hex digest of the resolved spec text (stored as meta["spec_hash"])."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_signature(plan: Any) -> dict[str, Any]:
    """What a checkpoint must agree with: parameter shapes by name and by module,
    which parameters train (those carry optimizer state) and the optimizer."""
    params = {p.name: list(p.shape) for p in plan.params}
    modules: dict[str, dict[str, list[int]]] = {}
    for p in plan.params:
        modules.setdefault(p.module, {})[p.name[len(p.module) + 1 :]] = list(p.shape)
    return {
        "params": params,
        "modules": modules,
        "trainable": [p.name for p in plan.params if p.trainable],
        "optimizer": plan.optimizer,
    }


def _shape(s: list[int]) -> str:
    return "[" + ",".join(map(str, s)) + "]"


def check_compatible(ckpt: Checkpoint, plan: Any, spec_hash: str | None = None) -> list[str]:
    """Raise CheckpointError unless the checkpoint holds exactly the plan's parameters
    with the same shapes; the message names the modules and parameters that differ.

    Parameters are the checkpoint tensors without a "/" in their name. A differing
    ``spec_hash`` (vs meta["spec_hash"]) is not an error when the parameters match (a
    renamed loss or a new learning rate still resumes): it comes back as a note in the
    returned list, for the trainer to show or refuse."""
    want = plan_signature(plan)["params"]
    have = {n: list(a.shape) for n, a in ckpt.tensors.items() if "/" not in n}

    def module_of(name: str) -> str:
        return name.rsplit(".", 1)[0]

    want_mods = {module_of(n) for n in want}
    have_mods = {module_of(n) for n in have}
    lines = []
    if only := sorted(have_mods - want_mods):
        lines.append(f"modules only in the checkpoint: {', '.join(only)}")
    if only := sorted(want_mods - have_mods):
        lines.append(f"modules only in this spec: {', '.join(only)}")
    shared = have_mods & want_mods
    if only := sorted(n for n in have.keys() - want.keys() if module_of(n) in shared):
        lines.append(f"parameters only in the checkpoint: {', '.join(only)}")
    if only := sorted(n for n in want.keys() - have.keys() if module_of(n) in shared):
        lines.append(f"parameters only in this spec: {', '.join(only)}")
    for n in sorted(want.keys() & have.keys()):
        if want[n] != have[n]:
            lines.append(f"changed shape: {n} {_shape(have[n])} in checkpoint, {_shape(want[n])} in spec")
    if lines:
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not fit this spec (it belongs to another network):\n  "
            + "\n  ".join(lines)
        )
    notes = []
    saved = ckpt.meta.get("spec_hash")
    if spec_hash is not None and saved is not None and saved != spec_hash:
        notes.append(
            f"the spec changed since checkpoint {ckpt.path} was saved (spec sha256 {str(saved)[:12]}… "
            f"then, {spec_hash[:12]}… now); its parameters still match"
        )
    return notes


def training_tensors(
    plan: Any,
    params: np.ndarray,
    opt_state: np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The tensors of a checkpoint from an executor's flat buffers: every parameter by
    name, row k of ``opt_state`` (slots x trainable elements) per trainable parameter as
    "optim/<k>/<param>", and ``extra`` arrays, whose names must contain a "/" so they can
    never be taken for a parameter. Views, not copies: save before the next step."""
    out: dict[str, np.ndarray] = {}
    for p in plan.params:
        out[p.name] = params[p.offset : p.offset + p.numel].reshape(p.shape)
    if opt_state is not None:
        for k in range(opt_state.shape[0]):
            for p in plan.params:
                if p.trainable:
                    v = opt_state[k, p.grad_offset : p.grad_offset + p.numel].reshape(p.shape)
                    out[f"{OPTIM_PREFIX}{k}/{p.name}"] = v
    for name, a in (extra or {}).items():
        if "/" not in name or name.startswith(OPTIM_PREFIX):
            raise ValueError(
                f"extra tensor '{name}': use a name with a '/' outside optim/ (e.g. 'data/mean')"
            )
        out[name] = a
    return out


def restore_training_tensors(
    ckpt: Checkpoint, plan: Any, params: np.ndarray, opt_state: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Copy a checkpoint's parameters (and, given ``opt_state``, its optimizer state) into
    an executor's flat buffers; returns the extra tensors. Raises CheckpointError when the
    parameters differ (see check_compatible) or the optimizer state has another number of
    slots than ``opt_state`` (a different optimizer): pass ``opt_state=None`` to start the
    optimizer afresh instead."""
    check_compatible(ckpt, plan)
    t = ckpt.tensors
    if opt_state is not None:
        slots = {int(n.split("/")[1]) for n in t if n.startswith(OPTIM_PREFIX) and n.split("/")[1].isdigit()}
        have = max(slots) + 1 if slots else 0
        if have != opt_state.shape[0]:
            raise CheckpointError(
                f"checkpoint {ckpt.path} holds {have} optimizer state slot(s) per parameter, this "
                f"optimizer ({plan.optimizer}) uses {opt_state.shape[0]}: it was saved with another optimizer"
            )
        missing = [
            f"{OPTIM_PREFIX}{k}/{p.name}"
            for k in range(have)
            for p in plan.params
            if p.trainable and f"{OPTIM_PREFIX}{k}/{p.name}" not in t
        ]
        if missing:
            raise CheckpointError(
                f"checkpoint {ckpt.path} lacks optimizer state {', '.join(missing[:5])}"
                f"{' …' if len(missing) > 5 else ''} (a parameter frozen then, trained now?)"
            )
    for p in plan.params:
        np.copyto(params[p.offset : p.offset + p.numel], t[p.name].reshape(-1), casting="same_kind")
    if opt_state is not None:
        for k in range(opt_state.shape[0]):
            for p in plan.params:
                if p.trainable:
                    src = t[f"{OPTIM_PREFIX}{k}/{p.name}"].reshape(-1)
                    np.copyto(opt_state[k, p.grad_offset : p.grad_offset + p.numel], src, casting="same_kind")
    return {n: a for n, a in t.items() if "/" in n and not n.startswith(OPTIM_PREFIX)}
