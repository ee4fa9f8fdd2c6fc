"""What a backend is: the contract every device implements (``Backend``), the executor
interface the training loop programs against (``Executor``), and the one error a device raises
(``DeviceError``).

A backend owns, for its device: whether it is usable here, the executor class, the buffer
operations the trainer performs (feeding batches, accumulating, clipping, copying weights),
the optimizer class that updates its buffers, and the name of the binder each kernel module
provides for it (``bind_cpu``, ``bind_cuda``). Nothing outside a backend module asks what kind
of array it holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ...compiler.plan import Plan, Step


class DeviceError(Exception):
    """A device that was asked for but cannot be used (or cannot run this plan)."""


class Executor(Protocol):
    """A plan bound to a device at a fixed batch size: flat parameter, gradient and optimizer
    buffers, one arena for the tensors, and the bound forward and backward steps."""

    plan: Plan
    batch: int
    dtype: np.dtype
    params: Any
    grads: Any
    opt_state: Any
    training: bool

    @property
    def backend(self) -> Backend: ...

    def view(self, name: str) -> Any: ...

    def set_inputs(self, inputs: Mapping[str, np.ndarray]) -> None: ...

    def forward(self, inputs: Mapping[str, np.ndarray] | None = None) -> None: ...

    def forward_stepwise(self) -> Iterator[Step]: ...

    def backward(self) -> None: ...

    def step(self, inputs: Mapping[str, np.ndarray] | None = None, update: Any = None) -> bool: ...

    def losses(self) -> dict[str, float]: ...


class Backend:
    """One device. Subclasses set the class attributes and implement the methods; the registry
    (``netc.runtime.backends``) checks a backend has every part (``missing_parts``)."""

    #: the ``--device`` name
    name: ClassVar[str]
    #: the attribute of a kernel module that binds a step for this device
    bind_attr: ClassVar[str]
    #: the attribute of a kernel module naming the activations its kernels apply as a fused
    #: epilogue on this device (``Binding.epilogue``); absent = none
    epilogues_attr: ClassVar[str]
    #: a line for ``netc --help`` and the docs
    doc: ClassVar[str]

    def usable(self) -> tuple[bool, str]:
        """(usable here, a description of the device or the reason it is not)."""
        raise NotImplementedError

    def missing_kernels(self, plan: Plan) -> list[tuple[str, str]]:
        """(op, module) of every step whose kernel module has no binder for this device."""
        from ..kernels import kernel_module

        seen: dict[str, str] = {}
        for s in plan.forward_steps:
            if s.op not in seen and not hasattr(kernel_module(s.op), self.bind_attr):
                seen[s.op] = s.module
        return list(seen.items())

    def epilogues(self, op: str) -> frozenset[str]:
        """The activations ``op``'s kernels apply in place on this device (compiler.fusion)."""
        from ..kernels import kernel_module

        return getattr(kernel_module(op), self.epilogues_attr, frozenset())

    def executor(self, plan: Plan, batch: int, **kw: Any) -> Executor:
        """An executor for ``plan`` at ``batch`` (``kw``: dtype, seed, optimizer)."""
        raise NotImplementedError

    def buffers(self, ex: Executor) -> Any:
        """The buffer operations the trainer performs on ``ex``'s arrays."""
        raise NotImplementedError

    def optimizer_class(self) -> type:
        """The optimizer that updates this device's flat buffers."""
        raise NotImplementedError

    def owns(self, array: Any) -> bool:
        """Whether ``array`` lives on this device (for ``Optimizer(...)`` given bare arrays)."""
        raise NotImplementedError
