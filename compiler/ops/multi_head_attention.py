"""multi_head_attention: scaled dot-product attention with h heads, as torch.nn.MultiheadAttention
(batch_first, no dropout, the attention weights not returned).

Inputs: [x] (self-attention: q = kv = x) or [q, kv] (cross-attention); q: [N, Tq, D], kv: [N, Tk, D].
  Q = q W_qᵀ + b_q,  K = kv W_kᵀ + b_k,  V = kv W_vᵀ + b_v               (each split into h heads of D/h)
  A_h = softmax(Q_h K_hᵀ / √(D/h) + M)   with M[i, j] = -inf where j > i when ``causal``
  C = concat_h(A_h V_h);  y = C W_oᵀ + b_o                                   → y: [N, Tq, D]

Parameters: w_q, w_k, w_v, w_o [D, D]; b_q, b_k, b_v, b_o [D] when ``bias`` (4·D² + 4·D in all, as
PyTorch). Default init xavier_uniform with the fans of PyTorch's packed in_proj [3D, D] for w_q, w_k,
w_v (fan_in D, fan_out 3D) and of a [D, D] matrix for w_o; biases zero.

FLOPs per sample (S = h·Tq·Tk scores): matmuls M = 2·Tq·D² (Q) + 4·Tk·D² (K, V) + 2·Tq·D² (out)
+ 2·Tq·Tk·D (QKᵀ) + 2·Tq·Tk·D (AV); biases B = (2·Tq + 2·Tk)·D; forward M + B + 6·S (scale 1, softmax
5 per score); backward 2·M + B + 5·S (softmax backward 4 and scale 1 per score) plus the recomputed
scores, 2·Tq·Tk·D + 3·S (QKᵀ, scale, exp and the 1/sum). The causal mask's skipped scores are still
counted.
Forward saves "softmax" [N, h, Tq, 2] (each score row's max and 1/sum: backward recomputes the
attention from Q, K and these, FlashAttention's trade, instead of keeping A [N, h, Tq, Tk]), "q" Q
[N, Tq, D], "k" K and "v" V [N, Tk, D] and "context" C [N, Tq, D]; backward reads the inputs too (for
dw). Workspace: two [Tq, Tk] score blocks (A and its gradient) per CPU thread, for min(N, THREADS)
threads: the [N, h, Tq, Tk] attention tensor is never written, in training or inference.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import (
    INIT_ATTR,
    INT_POS,
    THREADS,
    Op,
    Param,
    Saved,
    ShapeError,
    TensorType,
    bias_init,
    check_rank,
    float_input,
)


class MultiHeadAttention(Op):
    name = "multi_head_attention"
    family = "attention"
    arity = (1, 2)
    attributes: ClassVar[dict[str, Any]] = {
        "num_heads": {**INT_POS, "description": "number of heads h; D must divide by it"},
        "causal": {"type": "boolean", "default": False, "description": "query i attends only to keys j ≤ i"},
        "bias": {"type": "boolean", "default": True, "description": "learned biases on the four projections"},
        "init": {**INIT_ATTR, "default": "xavier_uniform", "description": "projection weight initializer"},
    }
    required = ("num_heads",)
    key_attributes = ("num_heads", "causal")
    reads_inputs = (0, 1)  # input 1 only in cross-attention
    example = ({"num_heads": 4}, (TensorType((64, 128)),))

    def _dims(self, attrs: dict[str, Any], ins: list[TensorType]) -> tuple[int, int, int, int]:
        """(Tq, Tk, D, h); checks the inputs."""
        for i, t in enumerate(ins):
            check_rank("multi_head_attention", t, i, (2,), "[N, T, D]")
            float_input(t, i)
        q, kv = ins[0], ins[-1]
        if q.shape[1] != kv.shape[1]:
            raise ShapeError(
                f"multi_head_attention needs one model size D in query and key/value, but input 0 is {q} "
                f"and input 1 is {kv}",
                1,
            )
        d, h = q.shape[1], attrs["num_heads"]
        if d % h:
            raise ShapeError(
                f"multi_head_attention num_heads={h} must divide the model size D={d} (input 0 is {q})", 0
            )
        return q.shape[0], kv.shape[0], d, h

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        self._dims(attrs, ins)
        return ins[0]

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        d, init = ins[0].shape[1], attrs["init"]
        ps = [Param(f"w_{p}", (d, d), init, fan_in=d, fan_out=3 * d) for p in "qkv"]
        ps.append(Param("w_o", (d, d), init, fan_in=d, fan_out=d))
        if attrs["bias"]:
            ps += [Param(f"b_{p}", (d,), bias_init(init), fan_in=d, fan_out=d) for p in "qkvo"]
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        tq, tk, d, h = self._dims(attrs, ins)
        mm = 4 * tq * d * d + 4 * tk * d * d + 4 * tq * tk * d
        bias = (2 * tq + 2 * tk) * d if attrs["bias"] else 0
        s = h * tq * tk
        return mm + bias + 6 * s, 2 * mm + bias + 5 * s + 2 * tq * tk * d + 3 * s

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        tq, tk, d, h = self._dims(attrs, ins)
        return [
            Saved("softmax", (h, tq, 2)),
            Saved("q", (tq, d)),
            Saved("k", (tk, d)),
            Saved("v", (tk, d)),
            Saved("context", (tq, d)),
        ]

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        tq, tk, _, _ = self._dims(attrs, ins)
        return min(batch, THREADS) * 2 * tq * tk * 4


OP = MultiHeadAttention()
