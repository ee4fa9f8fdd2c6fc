"""The files of a run directory, and the one way netc reads them back: every file is checked
against a JSON Schema before any of it is used, so a damaged or hand-edited file is one
message naming the file and the key, never a KeyError deep in the trainer, and never a
silently accepted value (``epoch: 10**30``).

    RUN/netc-run.json      the marker: this folder is a netc run (written first)
    RUN/config.json        the resolved train and data sections (flags applied)
    RUN/metrics.jsonl      one JSON record per epoch
    RUN/steps.jsonl        one JSON record per optimizer step (loss, lr, gradient norm)
    RUN/checkpoints/...    see store/records.py; the trainer's metadata is checked by meta_schema

It also decides what a folder is before netc writes to it: ``new_run_dir`` makes a run directory
(refusing a non-empty folder that is not a netc run), ``saved_config`` reopens one for
``--resume``, and ``dead_run``/``clear_progress`` handle a run that saved nothing to resume from.
docs/checkpoints.md describes the files and the rules for ``--out``.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from pathlib import Path
from typing import Any

from jsonschema.exceptions import best_match

from ..spec.validate import _Validator  # the spec's validator: 3.0 and true are not integers
from ..version import __version__
from .store import atomic
from .store.atomic import is_temp_file
from .store.errors import CheckpointError
from .store.records import has_checkpoint, read_json
from .training.errors import TrainError

MARKER = "netc-run.json"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
RUN_KIND = "netc-run"
RUN_FORMAT = 1
ENDINGS = ("finished", "early_stopped")  # how a run can end with a checkpoint to show for it

_INT = {"type": "integer", "minimum": 0}
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}


def check(obj: Any, schema: dict[str, Any], path: Path, where: str = "") -> None:
    """Raise CheckpointError naming ``path`` and the key at fault unless ``obj`` fits ``schema``.
    ``where`` prefixes the key path (e.g. "meta" for a checkpoint record's metadata)."""
    err = best_match(_Validator(schema).iter_errors(obj))
    if err is None:
        return
    keys = [where] if where else []
    keys += [str(k) for k in err.absolute_path]
    at = ".".join(keys) or "the top level"
    hint = err.schema.get("description", "") if isinstance(err.schema, dict) else ""
    raise CheckpointError(f"{path}: {at}: {err.message}{f' ({hint})' if hint else ''}")


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON file atomically (a kill leaves the old file or the new one, never half)."""
    data = (json.dumps(obj, indent=1) + "\n").encode()
    tmp, _ = atomic.write_temp(path, lambda f: f.write(data))
    atomic.commit(tmp, path)


# -- the marker ---------------------------------------------------------------------------------
_MARKER_SCHEMA = {
    "type": "object",
    "required": ["kind", "format"],
    "properties": {
        "kind": {"const": RUN_KIND},
        "format": {"const": RUN_FORMAT, "description": "a run from a newer netc needs that netc"},
        "diverged": {"type": ["object", "null"]},
    },
}


def write_marker(d: Path, **fields: Any) -> None:
    write_json(d / MARKER, {"kind": RUN_KIND, "format": RUN_FORMAT, "netc": __version__, **fields})


def read_marker(d: Path) -> dict[str, Any] | None:
    """The marker of run directory ``d``, or None where there is none."""
    p = d / MARKER
    if not p.exists():
        return None
    obj = read_json(p, "run marker")
    check(obj, _MARKER_SCHEMA, p)
    return obj


def is_run(d: Path) -> bool:
    """Whether netc made ``d``: it has the marker, or (a run of a netc before the marker)
    a config.json beside checkpoints/ or metrics.jsonl."""
    if (d / MARKER).exists():
        return True
    return (d / CONFIG).is_file() and ((d / "checkpoints").is_dir() or (d / METRICS).exists())


# -- config.json ----------------------------------------------------------------------------------
@functools.cache
def _config_schema() -> dict[str, Any]:
    from ..spec.schema import committed_schema

    spec = committed_schema()
    train = dict(spec["properties"]["train"])
    # The saved optimizer lists every optimizer's defaults (the expander fills them in), so its
    # fields are checked by type and range, not by which optimizer uses them.
    opt = train["properties"]["optimizer"]
    relaxed = {"type": "object", "required": ["type"], "properties": opt["properties"]}
    train["properties"] = {**train["properties"], "optimizer": relaxed}
    return {
        "type": "object",
        "required": ["spec", "train", "data"],
        "properties": {
            "spec": {"type": "string"},
            "train": {
                "allOf": [train, {"required": ["epochs", "batch_size", "optimizer"]}],
                "description": "the train section the run was started with",
            },
            "data": spec["properties"]["data"],
            "init_from": {"type": ["string", "null"]},
        },
        "$defs": spec["$defs"],
    }


def read_config(d: Path) -> dict[str, Any] | None:
    """The run's config.json, checked; None where the run has none."""
    p = d / CONFIG
    if not p.exists():
        return None
    obj = read_json(p, "run configuration")
    check(obj, _config_schema(), p)
    return obj


# -- metrics.jsonl and steps.jsonl ------------------------------------------------------------------
_RECORD_SCHEMA = {
    "type": "object",
    "required": ["epoch", "step"],
    "properties": {"epoch": {"type": "integer", "minimum": 1}, "step": _INT},
}
_STEP_SCHEMA = {
    "type": "object",
    "required": ["step", "epoch", "loss", "lr"],
    "properties": {
        "step": {"type": "integer", "minimum": 1},
        "epoch": {"type": "integer", "minimum": 1},
        "loss": _NUM,
        "lr": _NUM,
        "grad_norm": _NUM,
        "losses": {"type": "object", "additionalProperties": _NUM},
    },
}


def _read_jsonl(path: Path, what: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a JSON-lines log, each checked against ``schema``. A last line cut short
    (a kill or a full disk during the append, so no newline) is dropped: the checkpoint it
    belonged to was never written."""
    if not path.exists():
        return []
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} {path} is not UTF-8 text (damaged?)") from None
    lines = text.split("\n")
    lines.pop()  # "" after the final newline; else a record whose append was cut short
    out = []
    for i, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise CheckpointError(f"{what} {path}, line {i}: not a JSON record ({e})") from None
        check(rec, schema, path, f"line {i}")
        out.append(rec)
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The epoch records of a metrics.jsonl, checked: record i is epoch i + 1."""
    out = _read_jsonl(path, "metrics log", _RECORD_SCHEMA)
    for i, rec in enumerate(out, 1):
        if rec["epoch"] != i:
            raise CheckpointError(f"{path}: line {i}: epoch {rec['epoch']}, expected {i} (out of order)")
    return out


def read_steps(path: Path) -> list[dict[str, Any]]:
    """The per-step records of a steps.jsonl, checked: consecutive optimizer steps. (A run
    from a netc before steps.jsonl starts its log at the step it resumed from.)"""
    out = _read_jsonl(path, "step log", _STEP_SCHEMA)
    for i, (a, b) in enumerate(itertools.pairwise(out), 2):
        if b["step"] != a["step"] + 1:
            raise CheckpointError(f"{path}: line {i}: step {b['step']} after {a['step']} (out of order)")
    return out


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append records to a JSON-lines log (metrics.jsonl, steps.jsonl). Not atomic: a record cut
    short by a kill has no newline, and the readers above drop it."""
    try:
        with path.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
    except OSError as e:  # name the file: the message says what could not be written
        raise OSError(e.errno, e.strerror, str(path)) from e


def write_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace a JSON-lines log atomically (a resume cuts one back to its checkpoint)."""
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    tmp, _ = atomic.write_temp(path, lambda f: f.write(data))
    atomic.commit(tmp, path)


# -- a checkpoint's metadata (what Trainer.save writes) ---------------------------------------------
def meta_schema(
    *, epochs: int, batches_per_epoch: int, steps_per_epoch: int, losses: list[str], heads: list[str],
    trainable: int,
) -> dict[str, Any]:  # fmt: skip
    """The schema of the trainer's checkpoint metadata, bounded by the run's own configuration."""

    def by(names: list[str], value: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": names, "propertyNames": {"enum": names},
                "additionalProperties": value}  # fmt: skip

    return {
        "type": "object",
        "required": [
            *("epoch", "cursor", "step", "micro", "seed", "optimizer", "schedule", "early_stopping"),
            *("meter", "grad_norms", "lrs", "epoch_time"),
        ],
        "properties": {
            "epoch": {**_INT, "maximum": epochs, "description": f"the run has {epochs} epochs"},
            "cursor": {
                **_INT,
                "maximum": batches_per_epoch - 1,
                "description": f"an epoch has {batches_per_epoch} batches",
            },
            "step": _INT,
            "micro": _INT,
            "seed": _INT,
            "optimizer": {
                "type": "object",
                "required": ["type", "t"],
                "properties": {"type": {"type": "string"}, "key": {"type": "string"}, "t": _INT, "lr": _NUM},
            },
            "schedule": {
                "type": "object",
                "required": ["type", "steps", "epochs", "plateau"],
                "properties": {
                    "type": {"type": "string"},
                    "steps": _INT,
                    "epochs": _INT,
                    "total": {"type": "integer", "minimum": 1},
                    "plateau": {
                        "type": "object",
                        "required": ["lr", "best", "bad", "cooldown"],
                        "properties": {"lr": _NUM, "best": _NUM_OR_NULL, "bad": _INT, "cooldown": _INT},
                    },
                },
            },
            "early_stopping": {
                "type": ["object", "null"],
                "required": ["best", "best_epoch", "bad"],
                "additionalProperties": False,
                "properties": {"best": _NUM_OR_NULL, "best_epoch": {**_INT, "maximum": epochs}, "bad": _INT},
            },
            "meter": {
                "type": "object",
                "required": ["n", "loss", "correct", "abs", "sq", "count", "penalty", "steps"],
                "additionalProperties": False,
                "properties": {
                    "n": _INT,
                    "loss": by(losses, _NUM),
                    "correct": by(heads, _INT),
                    "abs": by(heads, _NUM),
                    "sq": by(heads, _NUM),
                    "count": by(heads, _INT),
                    "penalty": _NUM,
                    "steps": {**_INT, "maximum": steps_per_epoch},
                },
            },
            "grad_norms": {
                "type": "object",
                "required": ["sums", "count", "global"],
                "properties": {
                    "sums": {
                        "type": ["array", "null"],
                        "items": _NUM,
                        "minItems": trainable,
                        "maxItems": trainable,
                    },
                    "count": _INT,
                    "global": _NUM,
                },
            },
            "lrs": {"type": "array", "items": _NUM, "maxItems": steps_per_epoch},
            "epoch_time": _NUM,
            "ended": {"enum": [None, *ENDINGS]},
            "epochs": {"type": "integer", "minimum": 1},
        },
    }


# -- creating and reopening run directories ------------------------------------------------------
def dead_run(d: Path) -> bool:
    """A netc run that has nothing to resume from: no checkpoint, no final weights (killed
    before its first checkpoint, stopped by NaN in epoch 1, interrupted before training)."""
    return is_run(d) and not has_checkpoint(d / "checkpoints") and not (d / "weights.safetensors").exists()


def clear_progress(d: Path) -> None:
    """Forget what a dead run logged (its metrics, its best weights) before it starts again."""
    for f in (d / METRICS, d / STEPS, d / "checkpoints" / "best.safetensors"):
        if f.is_file():
            f.unlink()


def is_empty(d: Path) -> bool:
    """Nothing in ``d`` but temporary files of a netc write that was killed."""
    return all(is_temp_file(p) for p in d.iterdir())


def new_run_dir(name: str, out: str | None) -> Path:
    """A run directory for a new run, marked as netc's: ``out`` if given, else runs/<name>,
    runs/<name>-2, ... ``out`` must be new, empty, or a netc run that never saved a checkpoint
    (started again from the beginning); anything else is refused before a file is touched."""
    if out is not None:
        d = Path(out)
        if d.exists() and not d.is_dir():
            raise TrainError(f"--out {d}: a file of that name exists; choose another --out")
        if d.is_dir() and not is_empty(d):
            if not is_run(d):
                raise TrainError(
                    f"--out {d}: the folder is not empty and is not a netc run (it has no {MARKER}); "
                    "netc would overwrite its files: choose another --out, or empty the folder"
                )
            if not dead_run(d):
                if (read_marker(d) or {}).get("diverged"):
                    raise TrainError(
                        f"{d} holds a run that diverged after its last good checkpoint; pick another --out "
                        f"(add --init-from {d} to start from that checkpoint's weights)"
                    )
                raise TrainError(
                    f"{d} already holds a run; continue it with --resume {d}, or pick another --out"
                )
            clear_progress(d)
    else:
        base = Path("runs") / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        d, i = base, 1
        while d.exists():
            i += 1
            d = base.with_name(f"{base.name}-{i}")
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_marker(d)  # first: a run killed at any later moment is still recognizably netc's
        (d / "checkpoints").mkdir(exist_ok=True)
        (d / "plots").mkdir(exist_ok=True)
    except OSError as e:
        raise TrainError(f"cannot create the run directory {d}: {e.strerror}") from None
    return d


def saved_config(d: Path) -> dict[str, Any]:
    if not d.is_dir():
        raise TrainError(f"--resume {d}: no such run directory")
    saved = read_config(d)
    if saved is not None:
        return saved
    if read_marker(d) is not None or is_empty(d):
        raise TrainError(
            f"--resume {d}: the run was interrupted before it saved its configuration ({CONFIG}); nothing "
            f"was trained: start it again with netc run SPEC --out {d}"
        )
    raise TrainError(f"--resume {d}: no {CONFIG}; is this a netc run directory?")


def run_config(d: Path) -> dict[str, Any] | None:
    """A run directory's config.json (checked), or None where ``d`` is no netc run (a weights
    file in a folder of its own, whose config.json, if any, is someone else's)."""
    return read_config(d) if is_run(d) else None
