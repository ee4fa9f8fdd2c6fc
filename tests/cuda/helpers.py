"""Build an op's CPU run (tests/runtime/harness.py) and its device twin on the same data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
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

    def compare_state(self, rtol: float, atol: float = 0.0) -> None:
        """Saved tensors and parameters (running statistics) agree too."""
        c, g = self.cpu_binding, self.gpu_binding
        for what, cpu, gpu in (("saved", c.saved, g.saved), ("param", c.p, g.p)):
            for k, v in cpu.items():
                np.testing.assert_allclose(
                    gpu[k].copy_to_host(), v, rtol=rtol, atol=atol, err_msg=f"{what} {k}"
                )


def executors_agree(spec: Path, batch: int, outputs: list[str], modes: tuple[bool, ...] = (True,)) -> None:
    """The plan of ``spec`` on the CUDA executor equals the CPU executor, with real bindings
    (arena, parameter and workspace views, the batch read from the plan): the loss, ``outputs``,
    every gradient and every parameter (running statistics), after a forward and backward in each
    of ``modes`` (training True, evaluation False) in turn."""
    import netc
    from netc.runtime.check import random_inputs
    from netc.runtime.executor import Executor
    from netc.runtime.executor_cuda import CudaExecutor

    plan = netc.load(spec).compile(batch)
    cpu = Executor(plan, batch, seed=2)
    gpu = CudaExecutor(plan, batch, seed=2)
    feed = random_inputs(plan, batch, seed=5)
    for training in modes:
        for ex in (cpu, gpu):
            ex.training = training
            ex.forward(feed)
            ex.backward()
        np.testing.assert_allclose(gpu.loss(), cpu.loss(), rtol=1e-5)
        for name in outputs:
            np.testing.assert_allclose(gpu.outputs()[name], cpu.outputs()[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gpu.sync_grads_to_host(), cpu.grads, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(gpu.sync_params_to_host(), cpu.params, rtol=1e-5, atol=1e-7)
