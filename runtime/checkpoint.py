"""The public face of checkpoints and safetensors files: re-exports what ``runtime/store/``
implements (see its modules: the codec, the atomic-commit protocol, checkpoint records and
plan compatibility). docs/checkpoints.md describes the layout, the fields and every refusal.
"""

from __future__ import annotations

from .store.atomic import is_temp_file
from .store.compat import (
    OPTIM_PREFIX,
    check_compatible,
    plan_signature,
    restore_training_tensors,
    spec_hash,
    training_tensors,
)
from .store.errors import CheckpointError, warn
from .store.records import (
    FORMAT,
    LATEST,
    POINTER_KIND,
    RECORD_KIND,
    Checkpoint,
    has_checkpoint,
    is_checkpoint_file,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from .store.safetensors import CHECKSUM_KEY, read_safetensors, write_safetensors

__all__ = [
    "CHECKSUM_KEY",
    "FORMAT",
    "LATEST",
    "OPTIM_PREFIX",
    "POINTER_KIND",
    "RECORD_KIND",
    "Checkpoint",
    "CheckpointError",
    "check_compatible",
    "has_checkpoint",
    "is_checkpoint_file",
    "is_temp_file",
    "load_checkpoint",
    "plan_signature",
    "read_safetensors",
    "resolve_checkpoint",
    "restore_training_tensors",
    "save_checkpoint",
    "spec_hash",
    "training_tensors",
    "warn",
    "write_safetensors",
]
