"""Checkpoint records: save, find and load a checkpoint for exact resume.

A checkpoint ``<tag>`` in a checkpoints directory is two files:

- ``<tag>.<hash16>.safetensors`` — the tensors (parameters by name, optimizer state as
  ``optim/<slot>/<param>``, extra arrays such as ``data/mean``), written by the
  safetensors codec; ``<hash16>`` is the first 16 hex digits of the file's sha256.
- ``<tag>.json`` — the commit record: format, tag, the tensors file's name, byte size and
  sha256, a save sequence number and the trainer's metadata.

Every file is written by the atomic-commit protocol (atomic.py). The record is written only
after its tensors file is durable, and ``latest.json`` (a pointer to the newest record) only
after the record, so a SIGKILL or power cut at any moment leaves the previous checkpoint
complete and findable. The tensors file carries its hash in its name because a tag can be
saved again ("best", "last"): the new tensors must not replace the old ones before the new
record commits them. docs/checkpoints.md describes the layout, the fields and every refusal.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import atomic, safetensors
from .errors import CheckpointError, warn

FORMAT = 1
RECORD_KIND = "netc-checkpoint"
POINTER_KIND = "netc-checkpoint-pointer"
LATEST = "latest.json"
# A JSON file's integrity checksum, as a top-level key; it covers everything but itself
# (see _json_digest).
JSON_CHECKSUM_KEY = "checksum"
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TENSORS_RE = re.compile(r"^(?P<tag>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<hash>[0-9a-f]{16})\.safetensors$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its tensors, the trainer's metadata and where its record is."""

    tensors: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: Path  # the commit record (<tag>.json)
    tag: str = ""
    sha256: str = ""
    record: dict[str, Any] = field(default_factory=dict)


# -- JSON files: records and pointers ----------------------------------------------------


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
    tmp, _ = atomic.write_temp(path, lambda f: f.write(data))
    atomic.commit(tmp, path)


def read_json(path: Path, what: str) -> Any:
    """The JSON value in ``path``; every way it can fail is one CheckpointError naming ``what``
    and the file (missing, a directory, unreadable, not UTF-8, not JSON)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{what} {path} is a directory, not a file") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} {path} is not UTF-8 text (damaged?)") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{what} {path} is not valid JSON ({e})") from None


def _load_json(path: Path, what: str, unverified: str = "accept") -> dict[str, Any]:
    """A JSON object file; its checksum, if it has one, verified (and removed). Without one
    (an older netc wrote it, or a person): read, with a warning when ``unverified="warn"``."""
    obj = read_json(path, what)
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
    atomic.sweep_temps(d)
    records = _records(d)
    seq = max((r["seq"] for r in records.values()), default=0) + 1
    # The file's hash names it, so it is known only once written: write under a
    # temporary name, then rename to the hashed one.
    probe = d / f"{tag}.safetensors"
    counter: dict[str, int] = {}

    header_meta = safetensors.with_checksum(tensors, {"netc_checkpoint": str(FORMAT), "tag": tag})

    def write(f: BinaryIO) -> str:
        digest = safetensors.write_stream(f, tensors, header_meta)
        counter["bytes"] = f.tell()
        return digest

    tmp, digest = atomic.write_temp(probe, write)
    tensors_name = f"{tag}.{digest[:16]}.safetensors"
    atomic.commit(tmp, d / tensors_name)
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


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a checkpoint's tensors file (<tag>.<hash16>.safetensors)."""
    return bool(_TENSORS_RE.match(Path(path).name))


def resolve_checkpoint(path: Path) -> Path:
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
    record_path = resolve_checkpoint(Path(path))
    rec = _load_json(record_path, "checkpoint record", unverified="warn")
    _check_format(rec, RECORD_KIND, record_path)
    info = rec.get("tensors")
    if not (isinstance(info, dict) and isinstance(info.get("file"), str)
            and safetensors.is_count(info.get("bytes")) and isinstance(info.get("sha256"), str)
            and isinstance(rec.get("meta"), dict)):  # fmt: skip
        raise CheckpointError(f"checkpoint record {record_path} lacks tensors file, bytes, sha256 or meta")
    if Path(info["file"]).name != info["file"]:
        raise CheckpointError(f"checkpoint record {record_path} names a file outside its directory")
    tpath = record_path.with_name(info["file"])
    if not tpath.exists():
        raise CheckpointError(f"{tpath} (named by {record_path.name}) does not exist")
    buf = safetensors.read_bytes(tpath)
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
    tensors, _, _ = safetensors.parse(buf, tpath)
    return Checkpoint(tensors, rec["meta"], record_path, str(rec.get("tag", "")), digest, rec)
