"""gru kernels: the shared recurrent engine (``_recurrent``) with the gru cell."""

from __future__ import annotations

from ..binding import Binding, Thunk
from . import _recurrent, _recurrent_cuda


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    return _recurrent.bind_cpu(b, _recurrent.GRU)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    return _recurrent_cuda.bind_cuda(b, _recurrent.GRU)
