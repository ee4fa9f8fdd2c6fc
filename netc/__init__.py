"""netc — a declarative neural-network compiler.

Python API::

    import netc
    net = netc.load("examples/lenet5.yaml")    # validated, expanded, shaped
    plan = net.compile(batch=64, optimizer="adam")
    print(plan.summary())
    plan.to_json()
    plan.draw("lenet5.svg")
"""

from __future__ import annotations

from pathlib import Path

from .compiler.graph import Graph, build_graph
from .compiler.memory import assign_memory
from .compiler.plan import Plan, build_plan, optimizer_key
from .compiler.shapes import Shaped, infer_shapes
from .spec.errors import Diagnostic, SpecError
from .spec.expand import Network as ExpandedNetwork
from .spec.expand import expand
from .spec.load import load as load_document
from .spec.validate import validate

__all__ = ["Diagnostic", "Model", "Network", "Plan", "SpecError", "compile_file", "load"]
__version__ = "0.1.0"


class Network:
    """A validated, expanded and shape-checked network."""

    def __init__(self, expanded: ExpandedNetwork, graph: Graph, shaped: Shaped) -> None:
        self.expanded = expanded
        self.graph = graph
        self.shaped = shaped

    @property
    def name(self) -> str:
        return self.expanded.name

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.graph.warnings

    @property
    def train(self) -> dict:
        return self.expanded.train

    @property
    def data(self) -> dict | None:
        return self.expanded.data

    def compile(self, batch: int = 32, optimizer: str | None = None, input_grads: bool = False) -> Plan:
        """The costed plan at ``batch`` with the ledger for ``optimizer``
        (default: the spec's train.optimizer type)."""
        opt = optimizer or optimizer_key(self.expanded.train.get("optimizer"))
        return assign_memory(build_plan(self.shaped, opt, input_grads), batch)


def load(path: str | Path) -> Network:
    """Load, validate, expand and shape-check a spec file. Raises SpecError."""
    doc = load_document(path)
    net = expand(validate(doc))
    graph = build_graph(net)
    return Network(net, graph, infer_shapes(graph))


def compile_file(path: str | Path, batch: int = 32, optimizer: str | None = None) -> Plan:
    return load(path).compile(batch, optimizer)


def __getattr__(name: str) -> object:
    # The runtime imports numba; keep `import netc` (and validate/compile) free of it.
    if name == "Model":
        from .model import Model

        return Model
    raise AttributeError(f"module 'netc' has no attribute '{name}'")
