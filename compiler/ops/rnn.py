"""rnn: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu, as torch.nn.RNN (batch_first).

One gate (g = 1); forward saves h_t per step (S = 1). The shared contract follows.
Cell FLOPs per hidden unit and step: forward 2 (the sum and act), backward 3.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._recurrent import SHARED_DOC, Recurrent


class RNN(Recurrent):
    name = "rnn"
    gates = 1
    save_width = 1
    cell_cost = (2, 3)
    attributes: ClassVar[dict[str, Any]] = {
        **Recurrent.attributes,
        "nonlinearity": {"enum": ["tanh", "relu"], "default": "tanh", "description": "the cell's activation"},
    }
    key_attributes = (*Recurrent.key_attributes, "nonlinearity")


OP = RNN()
__doc__ = (__doc__ or "") + "\n" + SHARED_DOC  # the shared contract, in docs/ops.md too
