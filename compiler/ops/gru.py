"""gru: h_t = (1-z)⊙n + z⊙h_{t-1}, n = tanh(W_in x_t + b_in + r⊙(W_hn h_{t-1} + b_hn)), as torch.nn.GRU.

r, z = σ(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z}), torch's gate order r, z, n
(g = 3; batch_first). Forward saves r, z, n and W_hn h_{t-1} + b_hn per step (S = 4).
The shared contract follows. Cell FLOPs per hidden unit and step: forward 12, backward 18.
"""

from __future__ import annotations

from ._recurrent import SHARED_DOC, Recurrent


class GRU(Recurrent):
    name = "gru"
    gates = 3
    save_width = 4
    cell_cost = (12, 18)


OP = GRU()
__doc__ = (__doc__ or "") + "\n" + SHARED_DOC  # the shared contract, in docs/ops.md too
