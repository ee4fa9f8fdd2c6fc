"""Pass 4 — graph: the expanded Network → a DAG in a deterministic order.

The order is topological with declaration order breaking ties, so a chain
written top to bottom runs top to bottom, and the same spec always gives the
same plan. Kahn's algorithm over a heap is used instead of importing
networkx here: importing networkx alone costs ~0.11 s, a third of the
compile-time budget. ``to_networkx()`` gives the DiGraph for drawing and for
users who want graph algorithms.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from ..spec.errors import Diagnostic, SpecError, pointer
from ..spec.expand import Module, Network


@dataclass
class Graph:
    net: Network
    order: list[Module]  # topological, losses included
    consumers: dict[str, list[str]]  # tensor (input or module) -> modules reading it, in order
    outputs: list[str]
    warnings: list[Diagnostic]

    @property
    def losses(self) -> list[Module]:
        return [m for m in self.order if m.is_loss]

    def to_networkx(self) -> Any:
        import networkx as nx

        g = nx.DiGraph()
        for name, spec in self.net.inputs.items():
            g.add_node(name, kind="input", **spec)
        for m in self.order:
            g.add_node(m.name, kind="loss" if m.is_loss else "module", op=m.op, attrs=m.attrs)
            for i in m.inputs:
                g.add_edge(i, m.name)
        return g


def _cycle(mods: dict[str, Module], remaining: set[str]) -> list[str]:
    """One cycle among the modules left over by Kahn's algorithm."""
    start = min(remaining, key=lambda n: list(mods).index(n))
    path, seen = [start], {start: 0}
    cur = start
    while True:
        nxt = next(i for i in mods[cur].inputs if i in remaining)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt][::-1]
        seen[nxt] = len(path)
        path.append(nxt)
        cur = nxt


def build_graph(net: Network) -> Graph:
    """Order the modules; raise SpecError for a cycle; warn about unused parts."""
    mods = {m.name: m for m in net.modules}
    index = {m.name: i for i, m in enumerate(net.modules)}
    consumers: dict[str, list[str]] = {n: [] for n in [*net.inputs, *mods]}
    indeg = {}
    for m in net.modules:
        deps = [i for i in m.inputs if i in mods]
        indeg[m.name] = len(deps)
        for i in m.inputs:
            consumers[i].append(m.name)
    heap = [index[n] for n, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order: list[Module] = []
    while heap:
        m = net.modules[heapq.heappop(heap)]
        order.append(m)
        for c in consumers[m.name]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(heap, index[c])
    if len(order) < len(mods):
        remaining = set(mods) - {m.name for m in order}
        cyc = _cycle(mods, remaining)
        # Point at the read that goes back in the file (a module reading itself or a later
        # module): every cycle has one, and it is usually the mistake.
        producer, reader = next(
            ((p, r) for p, r in itertools.pairwise(cyc) if index[r] <= index[p]), (cyc[0], cyc[-1])
        )
        m = mods[reader]
        sub = "/in" if len(m.inputs) == 1 else pointer("in", m.inputs.index(producer))
        raise SpecError(
            [
                Diagnostic(
                    f"the modules form a cycle: {' → '.join(cyc)}",
                    m.where(sub),
                    m.ptr + sub,
                    f"module '{reader}' reads its own output; a network must be a DAG"
                    if reader == producer
                    else f"module '{reader}' reads '{producer}', which depends on '{reader}'; "
                    "a network must be a DAG",
                )
            ]
        )

    warnings: list[Diagnostic] = []
    if net.outputs is not None:
        outputs = list(net.outputs)
    else:
        outputs = [
            m.name for m in order if not m.is_loss and not any(not mods[c].is_loss for c in consumers[m.name])
        ]
    loss_inputs = {i for m in order if m.is_loss for i in m.inputs}
    for m in order:
        if m.is_loss or consumers[m.name] or m.name in outputs or m.name in loss_inputs:
            continue
        warnings.append(
            Diagnostic(
                f"the output of module '{m.name}' is never used",
                m.where(key=True),
                m.ptr,
                "remove the module, or list it under `outputs:`",
                severity="warning",
            )
        )
    for name in net.inputs:
        if not consumers[name]:
            ptr = "/inputs/" + name
            warnings.append(
                Diagnostic(
                    f"input '{name}' is never read",
                    net.doc.where(ptr, key=True),
                    ptr,
                    "remove the input, or give it to a module's `in:`",
                    severity="warning",
                )
            )
    warnings.sort(key=lambda d: (d.location.line, d.location.col) if d.location else (0, 0))
    return Graph(net, order, consumers, outputs, [*net.warnings, *warnings])
