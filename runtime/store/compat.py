"""Plan compatibility: whether a checkpoint belongs to a plan (its signature: parameter names
and shapes, which train, the optimizer; the spec's hash), and the mapping between an executor's
flat parameter and optimizer-state buffers and a checkpoint's named tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import CheckpointError
from .records import Checkpoint

OPTIM_PREFIX = "optim/"


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
