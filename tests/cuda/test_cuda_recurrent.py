"""rnn, lstm and gru on the GPU equal their CPU kernels, forward and backward (input, initial
states and every weight gradient), with dropout between layers drawing the CPU's masks. One tiny
case per op: the simulator runs each thread in Python."""

import numpy as np
import pytest
from helpers import Pair

RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    ("op", "attrs", "states"),
    [
        ("rnn", {"hidden_size": 2, "nonlinearity": "relu", "output": "last", "bidirectional": True}, 1),
        ("lstm", {"hidden_size": 2, "num_layers": 2, "dropout": 0.4}, 2),
        ("gru", {"hidden_size": 2, "bidirectional": True, "bias": False}, 0),
    ],
)
def test_recurrent(op, attrs, states):
    layers, dirs = attrs.get("num_layers", 1), 1 + attrs.get("bidirectional", False)
    hs = attrs["hidden_size"]
    ins = [RNG.standard_normal((2, 2, 2))] + [
        RNG.standard_normal((2, layers * dirs, hs)) for _ in range(states)
    ]
    p = Pair(op, attrs, ins, acc=True, dtype=np.float64).run()
    p.compare(1e-10, 1e-12)
    p.compare_state(1e-10, 1e-12)
