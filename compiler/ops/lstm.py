"""lstm: c_t = f⊙c_{t-1} + i⊙g, h_t = o⊙tanh(c_t), as torch.nn.LSTM.

i, f, g, o = σ, σ, tanh, σ of the four blocks of W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, in
torch's gate order (g = 4; batch_first, no projections). Optional inputs h0 and c0 [N, L·D, H].
Forward saves the activated gates and c_t per step (S = 5). The shared contract follows.
Cell FLOPs per hidden unit and step: forward 13, backward 20.
"""

from __future__ import annotations

from ._recurrent import SHARED_DOC, Recurrent


class LSTM(Recurrent):
    name = "lstm"
    gates = 4
    save_width = 5
    cell_cost = (13, 20)
    arity = (1, 3)


OP = LSTM()
__doc__ = (__doc__ or "") + "\n" + SHARED_DOC  # the shared contract, in docs/ops.md too
