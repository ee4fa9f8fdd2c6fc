"""maxpool1d: y[c, i] = max_{u<k} xpad[c, s·i + d·u], as torch.nn.MaxPool1d.

x: [N, C, L] → y: [N, C, Lo], Lo = floor((L + pad_left + pad_right - d·(k-1) - 1) / s) + 1, or
with ``ceil_mode`` the ceiling, less one where that last window would start past the input and
its left padding (PyTorch's rule); padding counts as -inf. ``stride`` null (the default) means
stride = kernel. ``padding`` is an int or [left, right] (conv1d's forms but "same"/"valid"); each
side may be at most half the kernel (PyTorch's rule). ``dilation`` spaces the taps (max pools
only). No parameters.

It is maxpool2d on the view [N, C, 1, L] with kernel [1, k] (``Pool1d.as_pool2d``), kernels
included. Forward saves the int64 index (into L) of each window's first maximum as "argmax",
shape [N, C, Lo]; backward scatters dy there and reads no input.
FLOPs per sample: forward one comparison per window cell read (inside the input); backward Lo·C
(one add per output).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_NONNEG, INT_POS, Op, Saved, ShapeError, TensorType, check_rank, float_input
from .maxpool2d import CEIL_MODE, AxisCells, cells_read, check_windows, pool_axis


class Pool1d(Op):
    """The shared contract of maxpool1d and avgpool1d: the 2-d pool ``POOL2D`` on [N, C, 1, L]."""

    family = "pooling"
    reads_inputs = ()
    attributes: ClassVar[dict[str, Any]] = {
        "kernel": {**INT_POS, "description": "window size"},
        "stride": {
            "oneOf": [INT_POS, {"type": "null"}],
            "default": None,
            "description": "step; null means = kernel",
        },
        "padding": {
            "oneOf": [INT_NONNEG, {"type": "array", "items": INT_NONNEG, "minItems": 2, "maxItems": 2}],
            "default": 0,
            "description": "implicit padding: int or [left, right]; each side at most kernel/2",
        },
        "ceil_mode": CEIL_MODE,
    }
    required = ("kernel",)
    key_attributes = ("kernel", "stride", "padding", "ceil_mode")
    example = ({"kernel": 2}, (TensorType((16, 128)),))

    @staticmethod
    def geometry(attrs: dict[str, Any]) -> tuple[int, int, int, int, int]:
        """(kernel, stride, dilation, pad_left, pad_right), the stride default resolved
        (avgpool1d has no dilation: 1)."""
        k, p = attrs["kernel"], attrs["padding"]
        s = attrs["stride"] if attrs["stride"] is not None else k
        pl, pr = (p, p) if isinstance(p, int) else p
        return k, s, attrs.get("dilation", 1), pl, pr

    @staticmethod
    def as_pool2d(attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes of the 2-d pool over [N, C, 1, L] that computes this one."""
        k, s, d, pl, pr = Pool1d.geometry(attrs)
        out = {**attrs, "kernel": [1, k], "stride": [1, s], "padding": [0, 0, pl, pr]}
        return {**out, "dilation": [1, d]} if "dilation" in attrs else out

    def _cells(self, attrs: dict[str, Any], x: TensorType) -> AxisCells:
        """The windows along the length, after every check of the geometry."""
        k, s, d, pl, pr = self.geometry(attrs)
        if max(pl, pr) > k // 2:
            raise ShapeError(f"{self.name} padding {attrs['padding']} must be at most half the kernel {k}")
        n = pool_axis(x.shape[1], k, s, d, pl, pr, attrs["ceil_mode"])
        if n < 1:
            span, padded = d * (k - 1) + 1, x.shape[1] + pl + pr
            dil = f" (dilated {span})" if d != 1 else ""
            more = f" by the stride {s} or more (ceil_mode)" if attrs["ceil_mode"] else ""
            raise ShapeError(
                f"{self.name} kernel {k}{dil} is longer than the padded input {padded}{more} "
                f"(input 0 is {x})",
                0,
            )
        cells = cells_read(x.shape[1], k, s, d, pl, n)
        check_windows(self.name, x, "length", cells, k, d, pl)
        return cells

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank(self.name, x, 0, (2,), "[N, C, L]")
        float_input(x)
        return TensorType((x.shape[0], self._cells(attrs, x).n))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        """Forward: one op per window cell read; backward: one add per output (max pools)."""
        return ins[0].shape[0] * self._cells(attrs, ins[0]).total, out.numel


class Maxpool1d(Pool1d):
    name = "maxpool1d"
    attributes: ClassVar[dict[str, Any]] = {
        **Pool1d.attributes,
        "dilation": {**INT_POS, "default": 1, "description": "spacing of window taps"},
    }

    key_attributes = (*Pool1d.key_attributes, "dilation")

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxpool1d()
