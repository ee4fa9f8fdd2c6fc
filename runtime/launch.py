"""Thunks that are data: a kernel and the arguments it was bound to.

A CPU binder (``bind_cpu``) returns, for forward and backward, either ``nothing`` or one of these:
``Launch(kernel, *args)`` runs ``kernel(*args)``; ``Seq(*launches)`` runs several in order;
``OneBlasThread(kernel, *args)`` is a Launch run with OpenBLAS on one thread (a kernel that splits
its GEMMs over numba's threads, ``_blas``); ``Checked(kernel, args, flag, message, hi)`` a Launch
whose kernel may flag a bad integer input, raising a ``ValueError`` after the call (``_ids``).

Being data rather than closures, a plan's thunks can be replayed one by one from Python (the
per-op path, ``netc profile``) or read by ``runtime.wholestep``, which generates one numba
function per mode calling the same kernels on the same arrays: a step without per-op dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .binding import Thunk, nothing


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS on one thread inside, its count restored after (nothing where it is not found)."""
    from .kernels._blas import OPENBLAS

    if OPENBLAS is None:
        yield
        return
    set_n, get_n = OPENBLAS
    prev = get_n()
    if prev == 1:
        yield
        return
    set_n(1)
    try:
        yield
    finally:
        set_n(prev)


class Launch:
    """``kernel(*args)`` as a callable; ``kernel`` is a numba dispatcher a module names."""

    __slots__ = ("args", "kernel")

    def __init__(self, kernel: Callable[..., Any], *args: Any) -> None:
        self.kernel, self.args = kernel, args

    def __call__(self) -> None:
        self.kernel(*self.args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.kernel, '__name__', self.kernel)!r})"


class OneBlasThread(Launch):
    """A Launch run with OpenBLAS on one thread, its count restored after (per-op path). The
    whole-step path sets one thread around the whole step instead (``one_blas``)."""

    __slots__ = ()

    def __call__(self) -> None:
        with one_blas_thread():
            self.kernel(*self.args)


class Checked(Launch):
    """A Launch whose kernel writes ``flag = [1, value]`` on an id outside [0, hi): ``check()``
    raises a ValueError naming the module. The whole-step path checks after its native call."""

    __slots__ = ("flag", "hi", "what")

    def __init__(self, kernel: Callable[..., Any], args: tuple, flag: np.ndarray, what: str, hi: int) -> None:
        super().__init__(kernel, *args)
        self.flag, self.what, self.hi = flag, what, hi

    def __call__(self) -> None:
        self.kernel(*self.args)
        self.check()

    def check(self) -> None:
        if self.flag[0]:
            raise ValueError(f"{self.what} {int(self.flag[1])} out of range [0, {self.hi})")


class Seq:
    """Several thunks (launches, ``nothing``, other Seqs) run in order, as one thunk."""

    __slots__ = ("launches",)

    def __init__(self, *launches: Thunk) -> None:
        self.launches = launches

    def __call__(self) -> None:
        for f in self.launches:
            f()


def launches(thunk: Thunk) -> list[Launch] | None:
    """The launches a thunk makes, in order (a Seq's flattened, ``nothing`` none); None when it
    is not data (a closure)."""
    if thunk is nothing:
        return []
    if isinstance(thunk, Launch):
        return [thunk]
    if isinstance(thunk, Seq):
        out: list[Launch] = []
        for f in thunk.launches:
            part = launches(f)
            if part is None:
                return None
            out.extend(part)
        return out
    return None
