"""The contract the recurrent ops (rnn, lstm, gru) share, as torch.nn.RNN/LSTM/GRU with batch_first.

x: [N, T, F] → y: [N, T, D·H] (``output: sequence``, every step of the last layer) or [N, D·H]
(``output: last``, the final hidden state of the last layer, forward then reverse direction, as
torch's ``cat(h_n[-2], h_n[-1])``; for lstm the hidden state h, not the cell state). D = 2 when
``bidirectional``, else 1; L = ``num_layers``. Optional input 1: the initial hidden state h0
[N, L·D, H] (torch's h0 with the batch axis first), and for lstm input 2: c0 [N, L·D, H]; zeros when
absent. Both outputs at once: a unidirectional net's last state is step T-1 of its sequence
(``select`` axis 0, index -1); a bidirectional one's reverse half ends at step 0.

The ops differ only in their cell: ``gates`` (g) pre-activations of width H per step, and
``save_width`` (S) vectors of width H saved per step for backward (the activated gates, plus lstm's
cell state and gru's W_hn·h + b_hn). Parameters per layer l and direction (suffix ``_reverse``):
w_ih_l{l} [g·H, F_l], w_hh_l{l} [g·H, H], b_ih_l{l}, b_hh_l{l} [g·H] (when ``bias``) — torch's
weight_ih_l0 … with netc's w/b naming (tests map them) and its gate order; F_0 = F, F_l = D·H.
Init: every one U[-1, 1]/sqrt(H) as torch ("fan_in_uniform" with fan_in H).

Between layers, in training, inverted dropout with probability ``dropout`` (as torch); its
masks are drawn like the dropout op's (counter-based, from the step's seed and the module).

Forward saves "seq" [N, L, T, D·H] (every layer's output), "gates" [N, L·D, T, S·H] and, with
dropout and L > 1, "mask" [N, L-1, T, D·H]; backward reads the inputs too. Workspace (float32
elements): N·T·g·H (the input projection of one layer and direction for all steps, one GEMM; in
backward its gradient), N·g·H (one step's recurrent product, then its gradient), 3·N·H (the
hidden and cell gradients carried back through time, and a zero initial state), 2·N·T·D·H (the
gradient of a layer's output and of its input) and, when L > 1, N·T·D·H (a layer's dropped input).

FLOPs per sample, with P = Σ_l D·T·2·F_l·g·H (input projections) and R = L·D·T·2·H·g·H
(recurrent products): forward P + R + L·D·T·H·(the cell's forward FLOPs + 2·g with bias);
backward 2·P + 2·R (input, hidden and weight gradients) + L·D·T·H·(the cell's backward FLOPs
+ 2·g with bias).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import (
    INT_POS,
    Op,
    Param,
    Saved,
    ShapeError,
    TensorType,
    check_rank,
    float_input,
)

STATE = ("h0", "c0")  # the optional inputs after x, in order
#: What the three ops share, appended to each op's docstring (docs/ops.md shows it with each)
SHARED_DOC = (__doc__ or "").split("\n", 2)[2]


class Recurrent(Op):
    """A recurrent layer; subclasses set the cell: ``gates``, ``save_width`` and its FLOPs."""

    family = "linear"
    gates: ClassVar[int]
    save_width: ClassVar[int]
    #: (forward, backward) FLOPs of the cell's pointwise math per hidden unit and step
    cell_cost: ClassVar[tuple[int, int]]
    arity = (1, 2)
    attributes: ClassVar[dict[str, Any]] = {
        "hidden_size": {**INT_POS, "description": "H, the size of the hidden state"},
        "num_layers": {**INT_POS, "default": 1, "description": "stacked layers L"},
        "bidirectional": {
            "type": "boolean",
            "default": False,
            "description": "also run the sequence backwards (D = 2)",
        },
        "dropout": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": 0,
            "description": "dropout probability on each layer's output but the last, in training",
        },
        "bias": {"type": "boolean", "default": True, "description": "learned biases b_ih and b_hh"},
        "output": {
            "enum": ["sequence", "last"],
            "default": "sequence",
            "description": "every step of the last layer [N, T, D·H], or its final hidden state [N, D·H]",
        },
    }
    required = ("hidden_size",)
    key_attributes = ("hidden_size", "num_layers", "bidirectional", "output")
    reads_inputs = (0, 1, 2)
    example = ({"hidden_size": 64}, (TensorType((28, 28)),))

    @staticmethod
    def dims(attrs: dict[str, Any], x: TensorType) -> tuple[int, int, int, int, int]:
        """(T, F, H, L, D) of a module."""
        return x.shape[0], x.shape[1], attrs["hidden_size"], attrs["num_layers"], 1 + attrs["bidirectional"]

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank(self.name, x, 0, (2,), "[N, T, F]")
        float_input(x)
        t, _, h, layers, d = self.dims(attrs, x)
        if t < 1:
            raise ShapeError(f"{self.name} needs at least one time step, but input 0 is {x}", 0)
        for i, s in enumerate(ins[1:], start=1):
            float_input(s, i)
            if s.shape != (layers * d, h):
                raise ShapeError(
                    f"{self.name} needs input {i} ({STATE[i - 1]}) of shape [N, {layers * d}, {h}] "
                    f"(num_layers·directions, hidden_size), but input {i} is {s}",
                    i,
                )
        return TensorType((t, d * h) if attrs["output"] == "sequence" else (d * h,))

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        _, f, h, layers, d = self.dims(attrs, ins[0])
        gh, ps = self.gates * h, []
        for layer in range(layers):
            fin = f if layer == 0 else d * h
            for suffix in ("", "_reverse")[:d]:
                tag = f"_l{layer}{suffix}"
                ps.append(Param("w_ih" + tag, (gh, fin), "fan_in_uniform", fan_in=h, fan_out=gh))
                ps.append(Param("w_hh" + tag, (gh, h), "fan_in_uniform", fan_in=h, fan_out=gh))
                if attrs["bias"]:
                    ps.append(Param("b_ih" + tag, (gh,), "fan_in_uniform", fan_in=h, fan_out=gh))
                    ps.append(Param("b_hh" + tag, (gh,), "fan_in_uniform", fan_in=h, fan_out=gh))
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        t, f, h, layers, d = self.dims(attrs, ins[0])
        gh = self.gates * h
        proj = sum(d * t * 2 * (f if layer == 0 else d * h) * gh for layer in range(layers))
        rec = layers * d * t * 2 * h * gh
        units = layers * d * t * h
        bias = 2 * self.gates * units if attrs["bias"] else 0
        fwd, bwd = self.cell_cost
        return proj + rec + fwd * units + bias, 2 * proj + 2 * rec + bwd * units + bias

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        t, _, h, layers, d = self.dims(attrs, ins[0])
        out_ = [Saved("seq", (layers, t, d * h)), Saved("gates", (layers * d, t, self.save_width * h))]
        if attrs["dropout"] > 0 and layers > 1:
            out_.append(Saved("mask", (layers - 1, t, d * h)))
        return out_

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        return 4 * workspace_elements(self.gates, attrs, ins[0].shape, batch)


def workspace_elements(gates: int, attrs: dict[str, Any], x_shape: tuple[int, ...], n: int) -> int:
    """Elements of the workspace the kernels carve (module docstring); the kernels call it too."""
    t, _ = x_shape
    h, layers, d = attrs["hidden_size"], attrs["num_layers"], 1 + attrs["bidirectional"]
    return (
        n * t * gates * h
        + n * gates * h
        + 3 * n * h
        + 2 * n * t * d * h
        + (n * t * d * h if layers > 1 else 0)
    )
