"""rnn kernels: the shared recurrent engine (``_recurrent``) with the tanh or relu cell."""

from __future__ import annotations

from ..binding import Binding, Thunk
from . import _recurrent, _recurrent_cuda


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    cell = _recurrent.RNN_TANH if b.attrs["nonlinearity"] == "tanh" else _recurrent.RNN_RELU
    return _recurrent.bind_cpu(b, cell)


def bind_cuda(b: Binding) -> tuple[Thunk, Thunk]:
    cell = _recurrent.RNN_TANH if b.attrs["nonlinearity"] == "tanh" else _recurrent.RNN_RELU
    return _recurrent_cuda.bind_cuda(b, cell)
