"""hinge kernels: multi-class margin loss, as torch.nn.MultiMarginLoss(p=1, margin).

Per row (logits x of C classes, label l): ℓ = Σ_{i≠l} max(0, margin - x_l + x_i) / C;
dx_i = g/C·[margin - x_l + x_i > 0] for i ≠ l and dx_l = -Σ of those. Labels outside [0, C)
raise ValueError after the call.
"""

from __future__ import annotations

from numba import njit

from ..binding import Binding, Thunk, nothing
from ._losses_embed_common import check_ids, checked, new_flag, reduction_scale


# Plain Python so the CUDA backend can compile it with cuda.jit(device=True).
def margin_violation(margin, x_label, x_i):
    return margin - x_label + x_i


_violation = njit(cache=True)(margin_violation)


@njit(cache=True)
def forward_cpu(x, labels, y, margin, scale, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    s = 0.0
    for r in range(x.shape[0]):
        xl = x[r, labels[r]]
        for i in range(x.shape[1]):
            if i != labels[r]:
                s += max(_violation(margin, xl, x[r, i]), 0.0)
    y[0] = s * scale / x.shape[1]


@njit(cache=True)
def backward_cpu(x, labels, dx, margin, g, acc, flag):
    if not check_ids(labels, x.shape[1], flag):
        return
    gc = g / x.shape[1]
    for r in range(x.shape[0]):
        label = labels[r]
        xl = x[r, label]
        total = 0.0
        for i in range(x.shape[1]):
            v = gc if i != label and _violation(margin, xl, x[r, i]) > 0 else 0.0
            total += v
            if acc:
                dx[r, i] += v
            else:
                dx[r, i] = v
        dx[r, label] -= total


def bind_cpu(b: Binding) -> tuple[Thunk, Thunk]:
    x, labels, y = b.x[0], b.x[1], b.y.reshape(-1)
    margin = float(b.attrs["margin"])
    scale = reduction_scale(b, labels.size)
    flag = new_flag()
    where = f"hinge '{b.module}'"
    c = x.shape[1]
    fwd = checked(forward_cpu, (x, labels, y, margin, scale, flag), flag, "label", where, c)
    if b.dx[0] is None:
        return fwd, nothing
    dx, acc, g = b.dx[0], bool(b.acc[0]), b.weight * scale
    return fwd, checked(backward_cpu, (x, labels, dx, margin, g, acc, flag), flag, "label", where, c)
