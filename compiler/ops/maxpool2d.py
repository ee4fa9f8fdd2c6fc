"""maxpool2d: y[c, i, j] = max_{u<kh, v<kw} xpad[c, s_h·i + d_h·u, s_w·j + d_w·v], as torch.nn.MaxPool2d.

x: [N, C, H, W] → y: [N, C, Ho, Wo], Ho = floor((H + pad_top + pad_bottom - d_h·(kh-1) - 1) / s_h)
+ 1 (Wo alike); with ``ceil_mode`` the ceiling, less one where that last window would start past
the input and its top/left padding (PyTorch's rule). ``stride`` null (the default) means stride =
kernel. ``padding`` takes conv2d's forms (int, [vertical, horizontal], [top, bottom, left,
right]); each side may be at most half the kernel along its axis (PyTorch's rule for its
symmetric padding, applied per side); padding counts as -inf. ``dilation`` spaces the window's
taps (max pools only, as PyTorch); a dilated window that would read only padding is an error
(PyTorch returns -inf there). No parameters. This module also holds ``Pool2d``, the contract
maxpool2d and avgpool2d share.

Forward saves the int64 flat index (into the unpadded H·W plane) of each window's maximum as
"argmax", shape [N, C, Ho, Wo]; backward scatters dy there and reads no input.
FLOPs per sample: forward one comparison per window cell read (inside the input: padding and
the part of a ceil_mode window past the edge are not read); backward Ho·Wo·C (one add per output).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from .base import (
    PAIR_OR_NULL,
    PAIR_POS,
    Op,
    Saved,
    ShapeError,
    TensorType,
    check_rank,
    float_input,
    pair,
)
from .conv2d import PADDING as CONV_PADDING
from .conv2d import pads4

PADDING = {
    "oneOf": CONV_PADDING["oneOf"][:3],  # conv2d's forms but "same"/"valid" (PyTorch's pools lack them)
    "default": 0,
    "description": "implicit padding: int, [vertical, horizontal] or [top, bottom, left, right]; "
    "each side at most half the kernel along its axis",
}
CEIL_MODE = {
    "type": "boolean",
    "default": False,
    "description": "round the output size up: a last window may hang over the bottom/right edge "
    "when it starts inside the input or its top/left padding",
}


def pool_axis(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool) -> int:
    """Outputs along one axis of ``size`` cells, padded p0 before and p1 after, as PyTorch's
    pooling_output_shape_pad_lr: floor (or with ``ceil`` ceil) of (padded - d·(k-1) - 1) / s, plus
    1; in ceil mode a last window that would start past the input and its leading padding is
    dropped. Below 1 where the dilated window is longer than the padded input (in ceil mode:
    by s or more)."""
    n = (size + p0 + p1 - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (n - 1) * s >= size + p0:
        n -= 1
    return n


class AxisCells(NamedTuple):
    """The windows along one axis: how many, the input cells they read in all, and the first
    one that reads only padding (None: every window reads a cell)."""

    n: int
    total: int
    empty: int | None


def cells_read(size: int, k: int, s: int, d: int, p0: int, n: int) -> AxisCells:
    """The n windows along one axis, whose taps i·s - p0 + u·d (u < k) fall inside the input
    [0, size) or not. Counted tap by tap, in O(k) whatever n is: a fuzzed padding of a million
    before a pool made a count window by window take seconds."""
    total = 0
    for u in range(k):  # the windows i with 0 <= i·s + o < size, for this tap's offset o
        o = u * d - p0
        lo, hi = max(0, -(o // s)), min(n - 1, (size - 1 - o) // s)
        total += max(0, hi - lo + 1)
    # Only a window starting in the leading padding, or at or past the input's end, can miss
    # every cell: a handful of windows, each checked tap by tap.
    first_inside, past = -(-p0 // s), -(-(size + p0) // s)
    edges = [*range(min(n, first_inside)), *range(max(past, first_inside), n)]
    empty = next((i for i in edges if not any(0 <= i * s - p0 + u * d < size for u in range(k))), None)
    return AxisCells(n, total, empty)


def check_windows(opname: str, x: TensorType, axis: str, cells: AxisCells, k: int, d: int, p0: int) -> None:
    """Raise unless every window reads an input cell. Only a dilated window can miss them all (its
    taps straddle an input shorter than the dilation); PyTorch returns -inf there with an argmax
    outside the plane, so netc refuses the geometry."""
    if cells.empty is not None:
        raise ShapeError(
            f"{opname} window {cells.empty} along the {axis} reads only padding: kernel {k} dilated by "
            f"{d} with padding {p0} misses every cell of input 0 {x}; use less padding or dilation",
            0,
        )


class Pool2d(Op):
    """The shared contract of maxpool2d and avgpool2d: attributes, output sizes and their checks
    (the module docstring), FLOPs."""

    family = "pooling"
    attributes: ClassVar[dict[str, Any]] = {
        "kernel": {**PAIR_POS, "description": "window size: int or [height, width]"},
        "stride": {**PAIR_OR_NULL, "default": None, "description": "step: int or pair; null means = kernel"},
        "padding": PADDING,
        "ceil_mode": CEIL_MODE,
    }
    required = ("kernel",)
    key_attributes = ("kernel", "stride", "padding", "ceil_mode")
    example = ({"kernel": 2}, (TensorType((16, 32, 32)),))

    @staticmethod
    def geometry(
        attrs: dict[str, Any],
    ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, ...]]:
        """(kernel, stride, dilation) pairs and the (top, bottom, left, right) padding, the stride
        default resolved (the pool kernels call it too). avgpool2d has no dilation: 1."""
        k = pair(attrs["kernel"])
        d = pair(attrs.get("dilation", 1))
        s = pair(attrs["stride"] if attrs["stride"] is not None else attrs["kernel"])
        return k, s, d, pads4(attrs, k, d)

    def _cells(self, attrs: dict[str, Any], x: TensorType) -> tuple[AxisCells, AxisCells]:
        """Cells read by each output row's and each output column's window (their product is the
        cells a window reads), after every check of the geometry."""
        k, s, d, pads = self.geometry(attrs)
        if max(pads[:2]) > k[0] // 2 or max(pads[2:]) > k[1] // 2:
            p = attrs["padding"]
            four = isinstance(p, list) and len(p) == 4
            shown = f"{p} (top, bottom, left, right)" if four else list(pair(p))
            raise ShapeError(f"{self.name} padding {shown} must be at most half the kernel {list(k)}")
        ceil, (h, w) = attrs["ceil_mode"], x.shape[1:]
        ho = pool_axis(h, k[0], s[0], d[0], pads[0], pads[1], ceil)
        wo = pool_axis(w, k[1], s[1], d[1], pads[2], pads[3], ceil)
        if ho < 1 or wo < 1:
            span = f" (dilated {d[0] * (k[0] - 1) + 1}x{d[1] * (k[1] - 1) + 1})" if d != (1, 1) else ""
            more = f" by the stride {list(s)} or more (ceil_mode)" if ceil else ""
            raise ShapeError(
                f"{self.name} kernel {k[0]}x{k[1]}{span} is larger than the padded input "
                f"{h + pads[0] + pads[1]}x{w + pads[2] + pads[3]}{more} (input 0 is {x})",
                0,
            )
        rows = cells_read(h, k[0], s[0], d[0], pads[0], ho)
        cols = cells_read(w, k[1], s[1], d[1], pads[2], wo)
        check_windows(self.name, x, "height", rows, k[0], d[0], pads[0])
        check_windows(self.name, x, "width", cols, k[1], d[1], pads[2])
        return rows, cols

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank(self.name, x, 0, (3,), "[N, C, H, W]")
        float_input(x)
        rows, cols = self._cells(attrs, x)
        return TensorType((x.shape[0], rows.n, cols.n))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        """Forward: one op per window cell read; backward: one add per output (max pools)."""
        rows, cols = self._cells(attrs, ins[0])
        return ins[0].shape[0] * rows.total * cols.total, out.numel


class Maxpool2d(Pool2d):
    name = "maxpool2d"
    reads_inputs = ()
    attributes: ClassVar[dict[str, Any]] = {
        **Pool2d.attributes,
        "dilation": {**PAIR_POS, "default": 1, "description": "spacing of window taps: int or pair"},
    }

    key_attributes = (*Pool2d.key_attributes, "dilation")

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxpool2d()
