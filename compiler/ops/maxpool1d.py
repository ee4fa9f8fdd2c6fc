"""maxpool1d: y[c, i] = max_{u<k} xpad[c, s·i + u], as torch.nn.MaxPool1d.

x: [N, C, L] → y: [N, C, Lo], Lo = floor((L + 2·p - k) / s) + 1; padding counts as -inf.
``stride`` null (the default) means stride = kernel. Padding may be at most half the kernel
(PyTorch's rule). No parameters.

It is maxpool2d on the view [N, C, 1, L] with kernel [1, k] (``Pool1d.as_pool2d``), kernels
included. Forward saves the int64 index (into L) of each window's first maximum as "argmax",
shape [N, C, Lo]; backward scatters dy there and reads no input.
FLOPs per sample: forward Lo·C·k comparisons; backward Lo·C (one add per output).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import INT_NONNEG, INT_POS, Op, Saved, ShapeError, TensorType, check_rank, float_input


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
        "padding": {**INT_NONNEG, "default": 0, "description": "implicit padding per side, at most kernel/2"},
    }
    required = ("kernel",)
    key_attributes = ("kernel", "stride", "padding")
    example = ({"kernel": 2}, (TensorType((16, 128)),))

    @staticmethod
    def as_pool2d(attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes of the 2-d pool over [N, C, 1, L] that computes this one."""
        k = attrs["kernel"]
        s = attrs["stride"] if attrs["stride"] is not None else k
        return {**attrs, "kernel": [1, k], "stride": [1, s], "padding": [0, attrs["padding"]]}

    def shape(self, attrs: dict[str, Any], ins: list[TensorType]) -> TensorType:
        x = ins[0]
        check_rank(self.name, x, 0, (2,), "[N, C, L]")
        float_input(x)
        k, p = attrs["kernel"], attrs["padding"]
        s = attrs["stride"] if attrs["stride"] is not None else k
        if p > k // 2:
            raise ShapeError(f"{self.name} padding {p} must be at most half the kernel {k}")
        padded = x.shape[1] + 2 * p
        if k > padded:
            raise ShapeError(
                f"{self.name} kernel {k} is longer than the padded input {padded} (input 0 is {x})",
                0,
            )
        return TensorType((x.shape[0], (padded - k) // s + 1))

    def flops(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> tuple[int, int]:
        return out.numel * attrs["kernel"], out.numel


class Maxpool1d(Pool1d):
    name = "maxpool1d"

    def saved(self, attrs: dict[str, Any], ins: list[TensorType], out: TensorType) -> list[Saved]:
        return [Saved("argmax", out.shape, "int64")]


OP = Maxpool1d()
