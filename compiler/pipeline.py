"""The pipeline from a spec file to a plan: load → validate → expand → graph → shapes
(:func:`load`, giving a :class:`Network`), then plan → memory (:meth:`Network.compile`).

It lives below the package face (``netc/__init__.py`` re-exports it) so that the runtime can
import it downward; like the rest of the compiler it never imports numba or the runtime.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..spec.errors import Diagnostic
from ..spec.expand import Network as ExpandedNetwork
from ..spec.expand import expand
from ..spec.load import load as load_document
from ..spec.validate import validate
from .fusion import fuse as fuse_plan
from .graph import Graph, build_graph
from .memory import assign_memory
from .plan import Plan, build_plan, optimizer_key
from .shapes import Shaped, infer_shapes


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

    def compile(
        self,
        batch: int = 32,
        optimizer: str | None = None,
        input_grads: bool = False,
        mode: str = "training",
        fuse: bool | None = None,
    ) -> Plan:
        """The costed plan at ``batch`` with the ledger for ``optimizer`` (default: the spec's
        train.optimizer type). ``mode`` "inference" gives a forward-only plan (compiler.fusion);
        ``fuse`` defaults to on unless the environment sets NETC_FUSE=0."""
        opt = optimizer or optimizer_key(self.expanded.train.get("optimizer"))
        plan = build_plan(self.shaped, opt, input_grads)
        if fuse is None:
            fuse = os.environ.get("NETC_FUSE", "1") != "0"
        if fuse or mode != "training":
            plan = fuse_plan(plan, mode, epilogues=fuse)
        return assign_memory(plan, batch)


def load(path: str | Path) -> Network:
    """Load, validate, expand and shape-check a spec file. Raises SpecError."""
    doc = load_document(path)
    net = expand(validate(doc))
    graph = build_graph(net)
    return Network(net, graph, infer_shapes(graph))


def compile_file(path: str | Path, batch: int = 32, optimizer: str | None = None) -> Plan:
    """The plan of a spec file at ``batch`` (``load(path).compile(batch, optimizer)``)."""
    return load(path).compile(batch, optimizer)
