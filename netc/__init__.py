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

from .compiler.pipeline import Network, compile_file, load
from .compiler.plan import Plan
from .spec.errors import Diagnostic, SpecError
from .version import __version__ as __version__

__all__ = ["Diagnostic", "Model", "Network", "Plan", "SpecError", "compile_file", "load"]


def __getattr__(name: str) -> object:
    # The runtime imports numba; keep `import netc` (and validate/compile) free of it.
    if name == "Model":
        from .model import Model

        return Model
    raise AttributeError(f"module 'netc' has no attribute '{name}'")
