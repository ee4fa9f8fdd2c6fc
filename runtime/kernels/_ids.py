"""Validation of integer inputs (class labels, token ids) inside the kernels that read them.

Kernels cannot raise cheaply, so an op that reads integer ids or labels validates them in the
kernel and, on a bad one, writes ``flag = [1, value]`` into a small array bound once (``new_flag``);
the thunk from ``checked`` tests ``flag[0]`` after the call and raises a ``ValueError`` naming the
module. On the GPU, ``device_check`` makes the check the executor runs after a step (a
``Binding.checks`` entry): it copies the ids to the host and raises on the first bad one. The valid
range is the one the op declares (``Op.int_input_range``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from ..launch import Checked


def new_flag() -> np.ndarray:
    """[bad?, the first bad value]."""
    return np.zeros(2, np.int64)


@njit(cache=True)
def check_ids(ids, hi, flag):
    """Flag the first id outside [0, hi); True when all are valid. Serial, so the value reported
    does not depend on the thread count."""
    flag[0] = 0
    for i in range(ids.size):
        v = ids[i]
        if v < 0 or v >= hi:
            flag[0] = 1
            flag[1] = v
            return False
    return True


@njit(cache=True)
def check_labels(ids, hi, ignore, flag):
    """``check_ids`` for class labels, where the value ``ignore`` (a loss's ignore_index) is valid too."""
    flag[0] = 0
    for i in range(ids.size):
        v = ids[i]
        if v != ignore and (v < 0 or v >= hi):
            flag[0] = 1
            flag[1] = v
            return False
    return True


def checked(kernel: Callable, args: tuple, flag: np.ndarray, what: str, module: str, hi: int) -> Checked:
    """A thunk calling ``kernel(*args)`` that raises if the kernel flagged an id."""
    return Checked(kernel, args, flag, f"{module}: {what}", hi)


def device_check(
    ids: Any, hi: int, op: str, module: str, what: str, ignore: int | None = None
) -> Callable[[], None]:
    """A check of device ``ids`` after a step: raises ``ValueError`` naming the op, the module and
    the first value outside [0, hi) (other than ``ignore``, a loss's ignore_index)."""

    def check() -> None:
        host = ids.copy_to_host()
        bad = (host < 0) | (host >= hi)
        if ignore is not None:
            bad &= host != ignore
        if bad.any():
            raise ValueError(f"{op} '{module}': {what} {int(host[bad][0])} out of range [0, {hi})")

    return check
