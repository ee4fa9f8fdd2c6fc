"""multi_head_attention's contract with separate key and value widths and masks: PyTorch's
parameter layout and initializer fans, FLOPs, saved tensors, which inputs are masks."""

from __future__ import annotations

import pytest
from torch import nn

from netc.compiler.ops import OPS
from netc.compiler.ops.base import TensorType as T

OP = OPS["multi_head_attention"]


def contract(attrs: dict, ins: list[T]) -> tuple[dict, T]:
    a = OP.fill_defaults(attrs)
    return a, OP.shape(a, ins)


@pytest.mark.parametrize(("kdim", "vdim"), [(8, 8), (5, 3)])
def test_params_are_pytorchs_layout_and_fans(kdim: int, vdim: int) -> None:
    """kdim = vdim = E: in_proj_weight [3E, E] split in three, initialized as one matrix (fan_out
    3E); else q/k/v_proj_weight, each initialized on its own."""
    ins = [T((3, 8)), T((4, kdim)), T((4, vdim))]
    a, _ = contract({"num_heads": 2}, ins)
    ps = {p.name: p for p in OP.params(a, ins)}
    m = nn.MultiheadAttention(8, 2, batch_first=True, kdim=kdim, vdim=vdim)
    if m._qkv_same_embed_dim:
        assert [ps[f"w_{p}"].shape for p in "qkv"] == [(8, 8)] * 3 and m.in_proj_weight.shape == (24, 8)
        assert {(ps[f"w_{p}"].fan_in, ps[f"w_{p}"].fan_out) for p in "qkv"} == {(8, 24)}
    else:
        for p, w in zip("qkv", (8, kdim, vdim), strict=True):
            assert ps[f"w_{p}"].shape == tuple(getattr(m, f"{p}_proj_weight").shape) == (8, w)
            assert (ps[f"w_{p}"].fan_in, ps[f"w_{p}"].fan_out) == (w, 8)
    assert sum(p.numel for p in ps.values()) == sum(p.numel() for p in m.parameters())


def test_flops_count_the_projections_widths_and_each_mask() -> None:
    tq, tk, d, h, kdim, vdim = 3, 5, 8, 2, 6, 4
    data = [T((tq, d)), T((tk, kdim)), T((tk, vdim))]
    masks = [T((tk,), "int64"), T((h, tq, tk))]
    a0, out = contract({"num_heads": h}, data)
    a2, _ = contract({"num_heads": h, "masks": ["key_padding", "attn"]}, data + masks)
    f0, b0 = OP.flops(a0, data, out)
    f2, b2 = OP.flops(a2, data + masks, out)
    scores = h * tq * tk
    assert (f2 - f0, b2 - b0) == (2 * scores, 2 * scores)  # one add per score and mask, again in backward
    mm = 2 * tq * d * d + 2 * tk * kdim * d + 2 * tk * vdim * d + 2 * tq * d * d + 4 * tq * tk * d
    assert f0 == mm + (2 * tq + 2 * tk) * d + 6 * scores
    assert b0 == 2 * mm + (2 * tq + 2 * tk) * d + 5 * scores + 2 * tq * tk * d + 3 * scores


def test_saved_and_workspace_do_not_depend_on_widths_or_masks() -> None:
    ins = [T((3, 8)), T((5, 6)), T((5, 4)), T((5,), "int64"), T((3, 5))]
    a, out = contract({"num_heads": 2, "masks": ["key_padding", "attn"]}, ins)
    saved = {s.name: s.shape for s in OP.saved(a, ins, out)}
    assert saved == {"softmax": (2, 3, 2), "q": (3, 8), "k": (5, 8), "v": (5, 8), "context": (3, 8)}
    assert OP.workspace(a, ins, out, 1) == 2 * 3 * 5 * 4
    assert OP.mask_inputs(a, len(ins)) == (3, 4) and OP.mask_inputs(OP.fill_defaults({}), 2) == ()
    assert out.shape == (3, 8)
