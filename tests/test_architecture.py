"""The house's shape: no import cycle anywhere in the package (imports inside functions count
too: a deferred import is still a dependency), and no source module over ~500 lines unless its
opening docstring says why."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 520
# A module may be longer when its docstring gives the reason; this word marks it.
LONG_OK = "Longer than"


def _pyproject_packages() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def packages() -> dict[str, Path]:
    """Every package of the source tree, by dotted name: each top-level folder pyproject maps
    (netc, spec, compiler, runtime, ...) and every folder with an __init__.py below it, found on
    disk, not read from pyproject's list (which a test checks against this)."""
    out = {}
    for pkg, d in _pyproject_packages().items():
        if "/" in d:
            continue
        for init in sorted((ROOT / d).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / d)
            out[".".join([pkg, *rel.parts])] = init.parent
    return out


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {}
    for pkg, d in packages().items():
        for f in d.glob("*.py"):
            out[pkg if f.name == "__init__.py" else f"{pkg}.{f.stem}"] = f
    return out


def test_pyproject_lists_every_package():
    """A subpackage missing from pyproject's lists is missing from the wheel (and an editable
    install would hide it)."""
    found = {k: str(v.relative_to(ROOT)) for k, v in packages().items()}
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == found
    assert sorted(cfg["packages"]) == sorted(found)


def imported(name: str, f: Path) -> set[str]:
    """Every module name ``name`` imports, anywhere in the file but under ``if TYPE_CHECKING:``
    (annotations only, never executed); ``from X import y`` counts X and X.y."""
    tree = ast.parse(f.read_text())
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    skip = {id(n) for g in guarded for n in ast.walk(g)}
    here = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            mod = base if node.level else (node.module or "")
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def import_graph() -> nx.DiGraph:
    mods = modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, f in mods.items():
        g.add_edges_from((name, t) for t in imported(name, f) & set(mods) - {name})
    return g


def test_the_graph_sees_imports():
    g = import_graph()
    assert g.has_edge("netc.runtime.executor", "netc.compiler.plan")
    assert g.has_edge("netc.runtime.kernels.relu", "netc.runtime.kernels.cuda_core")
    assert len(g) > 100


def test_no_import_cycle():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_compiler_and_the_spec_never_import_numba_or_the_runtime():
    for name, f in modules().items():
        # (netc.sources' loaders import the runtime inside their bodies, by design: its own test
        # checks that importing the declarations loads nothing heavy.)
        if name.startswith(("netc.compiler", "netc.spec")):
            bad = {m for m in imported(name, f) if m.split(".")[0] == "numba" or m.startswith("netc.runtime")}
            assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_small_or_say_why(name):
    f = modules()[name]
    n = len(f.read_text().splitlines())
    doc = ast.get_docstring(ast.parse(f.read_text())) or ""
    assert n <= MAX_LINES or LONG_OK in doc, (
        f"{f.relative_to(ROOT)} has {n} lines and no reason in its docstring"
    )


def test_every_module_says_what_it_owns():
    missing = [n for n, f in modules().items() if not ast.get_docstring(ast.parse(f.read_text()))]
    assert not missing, f"modules without an opening docstring: {missing}"
