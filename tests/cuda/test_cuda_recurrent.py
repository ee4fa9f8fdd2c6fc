"""rnn, lstm and gru on the GPU equal their CPU kernels, forward and backward (input, initial
states and every weight gradient), with dropout between layers drawing the CPU's masks. One tiny
case per op: the simulator runs each thread in Python."""

import numpy as np
import pytest
from helpers import Pair, executors_agree

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


NET = """
netc: 1
inputs:
  tokens: {shape: [3], dtype: int64}
  label: {shape: [], dtype: int64}
modules:
  embed: {op: embedding, in: tokens, num_embeddings: 5, dim: 2}
  gru: {op: gru, in: embed, hidden_size: 2, output: last}
  logits: {op: linear, in: gru, out_features: 3}
losses:
  ce: {op: cross_entropy, in: [logits, label]}
"""


def test_a_gru_network_on_the_cuda_executor_equals_the_cpu_executor(tmp_path):
    # real bindings: the arena's views, the shared workspace, the embedding's gradient through dx
    (tmp_path / "net.yaml").write_text(NET)
    executors_agree(tmp_path / "net.yaml", 2, ["logits"])
