"""log_softmax: y_i = x_i - max x - log Σ_j exp(x_j - max x) along per-sample ``axis``.

Backward: dx = dy - exp(y) ⊙ Σ_axis dy; it reads the output only.
FLOPs per sample: forward 5·numel (max, subtract, exp, sum, subtract; one log per row not
counted); backward 4·numel.
"""

from __future__ import annotations

from .softmax import Softmax


class LogSoftmax(Softmax):
    name = "log_softmax"


OP = LogSoftmax()
