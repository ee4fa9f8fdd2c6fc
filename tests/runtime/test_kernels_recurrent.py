"""Kernel parity of rnn, lstm and gru with torch.nn.RNN/LSTM/GRU (batch_first), forward and backward
(input, initial-state and every weight gradient), and float64 gradient checks; located errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import OpRun, close, gradcheck, rand, rebind, t

from netc.compiler.ops import OPS
from netc.compiler.ops.base import ShapeError, TensorType

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def torch_name(name: str) -> str:
    """netc's w_ih_l0 / b_hh_l1_reverse as torch's weight_ih_l0 / bias_hh_l1_reverse."""
    return ("weight" + name[1:]) if name.startswith("w_") else ("bias" + name[1:])


def parity(
    op: str, attrs: dict, n: int = 2, t_len: int = 4, f: int = 3, states: int = 0, seed: int = 0
) -> None:
    x = rand((n, t_len, f), seed)
    h = attrs["hidden_size"]
    full = OPS[op].fill_defaults(attrs)
    ld = full["num_layers"] * (1 + full["bidirectional"])
    ins = [x] + [rand((n, ld, h), seed + 1 + i, 0.5) for i in range(states)]
    run = OpRun(op, attrs, ins, seed=seed).run()
    kw = {"nonlinearity": full["nonlinearity"]} if op == "rnn" else {}
    net = TORCH[op](f, h, full["num_layers"], bias=full["bias"], batch_first=True,
                    bidirectional=full["bidirectional"], **kw)  # fmt: skip
    with torch.no_grad():
        for name, arr in run.params.items():
            getattr(net, torch_name(name)).copy_(torch.tensor(arr))
    tx = t(run.x[0], True)
    tstates = [t(a, True) for a in run.x[1:]]
    init = [s.transpose(0, 1).contiguous() for s in tstates]
    if op == "lstm" and init:
        init = (init[0], init[1] if len(init) > 1 else torch.zeros_like(init[0]))
    elif init:
        init = init[0]
    seq, hn = net(tx, init if len(tstates) else None)
    hn = hn[0] if op == "lstm" else hn
    dirs = 1 + full["bidirectional"]
    out = seq if full["output"] == "sequence" else torch.cat(list(hn[-dirs:]), dim=1)  # torch's h_n[-2:]
    close(run.y, out, "y")
    (out * t(run.dy)).sum().backward()
    close(run.dx[0], tx.grad, "dx", atol=2e-4)
    for i, s in enumerate(tstates, start=1):
        close(run.dx[i], s.grad, f"d input {i}", atol=2e-4)
    for name, g in run.dp.items():
        close(g, getattr(net, torch_name(name)).grad, name, atol=2e-4)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_one_layer_sequence(op):
    parity(op, {"hidden_size": 4})


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_two_layers_bidirectional_last_with_initial_state(op):
    parity(op, {"hidden_size": 3, "num_layers": 2, "bidirectional": True, "output": "last"}, states=1)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_bidirectional_sequence(op):
    parity(op, {"hidden_size": 3, "bidirectional": True}, t_len=5, seed=2)


def test_rnn_relu_no_bias_last_two_layers():
    parity(
        "rnn", {"hidden_size": 4, "nonlinearity": "relu", "bias": False, "num_layers": 2, "output": "last"}
    )


def test_lstm_with_h0_and_c0():
    parity("lstm", {"hidden_size": 4, "num_layers": 2}, states=2, seed=3)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_gradcheck_float64(op):
    attrs = {"hidden_size": 2, "num_layers": 2, "bidirectional": True, "dropout": 0.3, "output": "last"}
    if op == "rnn":
        attrs["nonlinearity"] = "tanh"
    ins = [rand((2, 3, 2), 5), rand((2, 4, 2), 6, 0.5)] + ([rand((2, 4, 2), 7, 0.5)] if op == "lstm" else [])
    gradcheck(OpRun(op, attrs, ins, dtype=np.float64, seed=1), samples=6)


def test_dropout_between_layers_trains_only():
    attrs = {"hidden_size": 4, "num_layers": 2, "dropout": 0.5}
    x = rand((3, 4, 3), 8)
    train = OpRun("gru", attrs, [x], seed=1)
    train.forward()
    plain = OpRun("gru", {**attrs, "dropout": 0}, [x], seed=1)
    plain.forward()
    evaluation = OpRun("gru", attrs, [x], seed=1, training=False)
    evaluation.forward()
    np.testing.assert_array_equal(evaluation.y, plain.y)  # inference: no dropout
    assert not np.allclose(train.y, plain.y)
    mask = train.saved["mask"]
    assert set(np.unique(mask)) == {0.0, 2.0}  # inverted: kept elements scaled by 1/(1-p)


@pytest.mark.parametrize(
    ("op", "ins", "attrs", "message"),
    [
        ("lstm", [TensorType((5,))], {"hidden_size": 4}, "needs input 0 of shape [N, T, F]"),
        (
            "gru",
            [TensorType((5, 3)), TensorType((2, 4))],
            {"hidden_size": 4},
            "input 1 (h0) of shape [N, 1, 4]",
        ),
        ("lstm", [TensorType((5, 3)), TensorType((1, 4)), TensorType((1, 3))], {"hidden_size": 4}, "(c0)"),
    ],
)
def test_located_errors(op, ins, attrs, message):
    with pytest.raises(ShapeError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        OPS[op].shape(OPS[op].fill_defaults(attrs), ins)


def test_contract_counts():
    lstm = OPS["lstm"]
    attrs = lstm.fill_defaults({"hidden_size": 4, "num_layers": 2, "bidirectional": True, "dropout": 0.1})
    x = TensorType((5, 3))
    ps = lstm.params(attrs, [x])
    # torch.nn.LSTM(3, 4, 2, bidirectional=True) has 4·4·(3+4+2)·2 + 4·4·(8+4+2)·2 parameters
    assert sum(p.numel for p in ps) == sum(
        p.numel() for p in torch.nn.LSTM(3, 4, 2, bidirectional=True).parameters()
    )
    assert {p.name for p in ps} >= {"w_ih_l0", "w_hh_l1_reverse", "b_ih_l1", "b_hh_l0_reverse"}
    assert all(lstm.param_role(p.name, True) == ("bias" if p.name[0] == "b" else "weight") for p in ps)
    saved = {s.name: s.shape for s in lstm.saved(attrs, [x], lstm.shape(attrs, [x]))}
    assert saved == {"seq": (2, 5, 8), "gates": (4, 5, 20), "mask": (1, 5, 8)}


def test_last_is_the_sequence_at_its_final_steps():
    # the documented way to have both: select index -1 (forward half) and 0 (reverse half)
    attrs = {"hidden_size": 3, "num_layers": 2, "bidirectional": True}
    x = rand((2, 4, 3), 9)
    seq = OpRun("lstm", attrs, [x], seed=4)
    seq.forward()
    last = OpRun("lstm", {**attrs, "output": "last"}, [x], seed=4)
    last.forward()
    np.testing.assert_array_equal(last.y[:, :3], seq.y[:, -1, :3])
    np.testing.assert_array_equal(last.y[:, 3:], seq.y[:, 0, 3:])


def test_flops_and_workspace():
    lstm = OPS["lstm"]
    attrs = lstm.fill_defaults({"hidden_size": 4})
    x = TensorType((5, 3))
    # input projection 5·2·3·16, recurrent 5·2·4·16, cell 13 and bias 2·4 per unit and step (20)
    assert lstm.flops(attrs, [x], lstm.shape(attrs, [x])) == (480 + 640 + 260 + 160, 960 + 1280 + 400 + 160)
    # N·T·gH + N·gH + 3·N·H + 2·N·T·D·H float32 elements at batch 2
    assert lstm.workspace(attrs, [x], lstm.shape(attrs, [x]), 2) == 4 * (160 + 32 + 24 + 80)


def test_input_and_state_gradients_accumulate():
    # an input read by several modules: dx, dh0 and dc0 add to what they hold
    attrs = {"hidden_size": 2, "bidirectional": True}
    ins = [rand((2, 3, 2), 10), rand((2, 2, 2), 11), rand((2, 2, 2), 12)]
    plain = OpRun("lstm", attrs, ins, seed=2).run()
    run = OpRun("lstm", attrs, ins, seed=2)
    run.binding.acc[:] = [True, True, True]
    rebind(run)
    before = [rand(d.shape, 13 + i).astype(np.float32) for i, d in enumerate(run.dx)]
    for d, b in zip(run.dx, before, strict=True):
        d[:] = b
    run.run()
    for i, (d, b, want) in enumerate(zip(run.dx, before, plain.dx, strict=True)):
        close(d, b + want, f"input {i} accumulated", atol=1e-6)
