"""multi_head_attention: scaled dot-product attention with h heads, as torch.nn.MultiheadAttention
(batch_first, no dropout, the attention weights not returned).

Inputs: the data inputs [x] (self-attention: q = k = v = x), [q, kv] (k = v = kv) or [q, k, v],
then one input per entry of ``masks``, in its order. q: [N, L, E], k: [N, S, kdim], v: [N, S, vdim]
(kdim and vdim default to the inputs' widths; E is the model size, q's width).
  Q = q W_qᵀ + b_q,  K = k W_kᵀ + b_k,  V = v W_vᵀ + b_v               (each split into h heads of E/h)
  A_h = softmax(Q_h K_hᵀ / √(E/h) + M)   with M[i, j] = -inf where j > i when ``causal``, plus the masks
  C = concat_h(A_h V_h);  y = C W_oᵀ + b_o                                   → y: [N, L, E]

Masks (``masks: [key_padding, attn]``, either or both, in the order their inputs come): a
``key_padding`` mask [N, S] masks key j for every query of a sample, an ``attn`` mask [N, L, S] (one
per sample, all heads) or [N, h, L, S] (per head: PyTorch's [N·h, L, S] reshaped) masks score (i, j).
An int64 mask (the spec language's stand-in for PyTorch's bool) masks where it is nonzero (adds
-inf), a float32 mask is added to the scores; masks and ``causal`` combine. A query whose every key
is masked attends to nothing: a zero context (y = b_o) and no gradient through its scores, as
PyTorch's scaled_dot_product_attention (MultiheadAttention with need_weights=False; its default
need_weights=True path gives NaN). Masks get no gradient.

Parameters: w_q [E, E], w_k [E, kdim], w_v [E, vdim], w_o [E, E]; b_q, b_k, b_v, b_o [E] when
``bias`` (as PyTorch: in_proj_weight [3E, E] is w_q, w_k, w_v stacked when kdim = vdim = E, else
q_proj_weight, k_proj_weight, v_proj_weight are w_q, w_k, w_v; in_proj_bias is b_q, b_k, b_v). Default
init xavier_uniform with PyTorch's fans: those of the packed [3E, E] (fan_in E, fan_out 3E) for w_q,
w_k, w_v when kdim = vdim = E, else each matrix's own; w_o's own; biases zero.

FLOPs per sample (S' = h·L·S scores, m masks): matmuls M = 2·L·E² (Q) + 2·S·E·(kdim + vdim) (K, V)
+ 2·L·E² (out) + 2·L·S·E (QKᵀ) + 2·L·S·E (AV); biases B = (2·L + 2·S)·E; forward M + B + (6 + m)·S'
(scale 1, masks 1 each, softmax 5 per score); backward 2·M + B + 5·S' (softmax backward 4 and scale 1
per score) plus the recomputed scores, 2·L·S·E + (3 + m)·S' (QKᵀ, scale, masks, exp and the 1/sum).
Masked and causally skipped scores are still counted.
Forward saves "softmax" [N, h, L, 2] (each score row's max and 1/sum: backward recomputes the
attention from Q, K, the masks and these, FlashAttention's trade, instead of keeping A [N, h, L, S]),
"q" Q [N, L, E], "k" K and "v" V [N, S, E] and "context" C [N, L, E]; backward reads the inputs too
(for dw, and the masks). Workspace: two [L, S] score blocks (A and its gradient) per CPU thread, for
min(N, THREADS) threads: the [N, h, L, S] attention tensor is never written, in training or inference.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

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

MASKS = ("key_padding", "attn")
WIDTH = {"oneOf": [INT_POS, {"type": "null"}], "default": None}


class Dims(NamedTuple):
    """The sizes of one use: query length L, key length S, model size E, heads h, the key and
    value widths, and how many data inputs come before the masks."""

    tq: int
    tk: int
    d: int
    h: int
    kdim: int
    vdim: int
    data: int


class MultiHeadAttention(Op):
    name = "multi_head_attention"
    family = "attention"
    arity = (1, 3 + len(MASKS))
    attributes: ClassVar[dict[str, Any]] = {
        "num_heads": {**INT_POS, "description": "number of heads h; E must divide by it"},
        "causal": {"type": "boolean", "default": False, "description": "query i attends only to keys j ≤ i"},
        "bias": {"type": "boolean", "default": True, "description": "learned biases on the four projections"},
        "init": {**INIT_ATTR, "default": "xavier_uniform", "description": "projection weight initializer"},
        "kdim": {
            **WIDTH,
            "description": "width of the key input (PyTorch's kdim); null: the key input's width",
        },
        "vdim": {
            **WIDTH,
            "description": "width of the value input (PyTorch's vdim); null: the value input's",
        },
        "masks": {
            "type": "array",
            "items": {"enum": list(MASKS)},
            "uniqueItems": True,
            "default": [],
            "description": "which mask inputs follow the data inputs, in their order: key_padding "
            "[N, S], attn [N, L, S] or [N, h, L, S]; int64 masks where nonzero, float32 adds",
        },
    }
    required = ("num_heads",)
    key_attributes = ("num_heads", "causal", "masks")
    reads_inputs = tuple(range(3 + len(MASKS)))  # backward reads every input (masks: the scores again)
    example = ({"num_heads": 4}, (TensorType((64, 128)),))

    def mask_inputs(self, attrs: dict[str, Any], n_inputs: int) -> tuple[int, ...]:
        first = n_inputs - len(attrs.get("masks") or [])
        return tuple(range(first, n_inputs)) if first >= 1 else ()  # too few inputs: ``dims`` says so

    def dims(self, attrs: dict[str, Any], ins: list[TensorType]) -> Dims:
        """The sizes of this use; checks every input."""
        op, masks = "multi_head_attention", attrs.get("masks") or []
        data = len(ins) - len(masks)
        if not 1 <= data <= 3:
            raise ShapeError(
                f"{op} with masks {masks} takes 1 to 3 data inputs ([x], [q, kv] or [q, k, v]) and then "
                f"{len(masks)} mask input(s), but has {len(ins)} inputs"
            )
        for i in range(data):
            check_rank(op, ins[i], i, (2,), "[N, T, width]")
            float_input(ins[i], i)
        q, k, v = ins[0], ins[min(1, data - 1)], ins[data - 1]
        if v.shape[0] != k.shape[0]:
            raise ShapeError(
                f"{op} needs one length S in key and value, but input 1 is {k} and input 2 is {v}", 2
            )
        (tq, d), (tk, kdim), vdim, h = q.shape, k.shape, v.shape[1], attrs["num_heads"]
        for what, want, got, i in (
            ("kdim", attrs.get("kdim"), kdim, 1),
            ("vdim", attrs.get("vdim"), vdim, 2),
        ):
            if want is not None and want != got:
                i = min(i, data - 1)
                raise ShapeError(f"{op} {what}={want}, but input {i} is {ins[i]} (width {got})", i)
        if d % h:
            raise ShapeError(f"{op} num_heads={h} must divide the model size E={d} (input 0 is {q})", 0)
        for i, kind in enumerate(masks, start=data):
            m = ins[i]
            want = [(tk,)] if kind == "key_padding" else [(tq, tk), (h, tq, tk)]
            if m.shape not in want:
                forms = " or ".join(str(TensorType(w)) for w in want)
                raise ShapeError(
                    f"{op} {kind} mask (input {i}) must be {forms} for query length L={tq}, key length "
                    f"S={tk} and {h} heads, but input {i} is {m}",
                    i,
                )
            if m.dtype not in ("int64", "float32"):
                raise ShapeError(f"{op} {kind} mask (input {i}) must be int64 or float32, got {m.dtype}", i)
        return Dims(tq, tk, d, h, kdim, vdim, data)

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        self.dims(attrs, ins)
        return ins[0]

    def params(self, attrs: dict[str, Any], ins: list[TensorType]) -> list[Param]:
        dm, init = self.dims(attrs, ins), attrs["init"]
        d = dm.d
        packed = dm.kdim == dm.vdim == d  # PyTorch's in_proj_weight [3E, E], initialized as one matrix
        ps = [
            Param(f"w_{p}", (d, w), init, fan_in=w, fan_out=3 * d if packed else d)
            for p, w in (("q", d), ("k", dm.kdim), ("v", dm.vdim))
        ]
        ps.append(Param("w_o", (d, d), init, fan_in=d, fan_out=d))
        if attrs["bias"]:
            ps += [Param(f"b_{p}", (d,), bias_init(init), fan_in=d, fan_out=d) for p in "qkvo"]
        return ps

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        tq, tk, d, h, kdim, vdim, data = self.dims(attrs, ins)
        m = len(ins) - data
        mm = 4 * tq * d * d + 2 * tk * d * (kdim + vdim) + 4 * tq * tk * d
        bias = (2 * tq + 2 * tk) * d if attrs["bias"] else 0
        s = h * tq * tk
        return mm + bias + (6 + m) * s, 2 * mm + bias + 5 * s + 2 * tq * tk * d + (3 + m) * s

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        tq, tk, d, h, *_ = self.dims(attrs, ins)
        return [
            Saved("softmax", (h, tq, 2)),
            Saved("q", (tq, d)),
            Saved("k", (tk, d)),
            Saved("v", (tk, d)),
            Saved("context", (tq, d)),
        ]

    def workspace(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType, batch: int) -> int:
        tq, tk, *_ = self.dims(attrs, ins)
        return min(batch, THREADS) * 2 * tq * tk * 4


OP = MultiHeadAttention()
