"""Build an op's CPU run (tests/runtime/harness.py) and its device twin on the same data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from harness import OpRun
from numba import cuda

from netc.runtime.binding import Binding
from netc.runtime.kernels import kernel_module


def dev(a: np.ndarray | None) -> Any:
    return None if a is None else cuda.to_device(np.ascontiguousarray(a))


class Pair:
    """An op bound twice on equal arrays: ``cpu`` (NumPy, ``bind_cpu``) and ``gpu`` (device
    arrays, ``bind_cuda``). ``acc`` makes every input gradient accumulate into random contents."""

    def __init__(self, op: str, attrs: dict, inputs: list[np.ndarray], acc: bool = False, **kw: Any) -> None:
        run = OpRun(op, attrs, inputs, **kw)
        rng = np.random.default_rng(7)
        if acc:
            for d in run.dx:
                if d is not None:
                    d[...] = rng.standard_normal(d.shape)
        b = replace(run.binding, acc=[acc] * len(inputs), checks=[])
        self.cpu_binding = b
        self.cpu = kernel_module(op).bind_cpu(b)
        self.gpu_binding = Binding(
            module=b.module,
            attrs=b.attrs,
            x=[dev(a) for a in b.x],
            y=dev(b.y),
            p={k: dev(v) for k, v in b.p.items()},
            dp={k: dev(v) for k, v in b.dp.items()},
            saved={k: dev(v) for k, v in b.saved.items()},
            dy=dev(b.dy),
            dx=[dev(d) for d in b.dx],
            acc=list(b.acc),
            ws=dev(b.ws),
            state=b.state,
            weight=b.weight,
            index=b.index,
        )
        self.gpu = kernel_module(op).bind_cuda(self.gpu_binding)

    def run(self) -> Pair:
        for f in (*self.cpu, *self.gpu):
            f()
        return self

    def compare(self, rtol: float, atol: float = 0.0) -> None:
        """Output, every input gradient and every parameter gradient agree."""
        c, g = self.cpu_binding, self.gpu_binding
        pairs = [("y", c.y, g.y)]
        pairs += [(f"dx{i}", a, d) for i, (a, d) in enumerate(zip(c.dx, g.dx, strict=True)) if a is not None]
        pairs += [(f"d{k}", v, g.dp[k]) for k, v in c.dp.items() if v is not None]
        for name, want, got in pairs:
            np.testing.assert_allclose(got.copy_to_host(), want, rtol=rtol, atol=atol, err_msg=name)
