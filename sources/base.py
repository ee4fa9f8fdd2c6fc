"""What a data source declares (:class:`Source`), and the checks that catch a missing part.

A source is one file in this folder holding ``SOURCE = Source(name=..., doc=..., fields=...,
loader=...)``: the name `data.source` takes, a one-line doc, the `data` keys it reads with
their JSON-Schema fragments, and the loader that reads the samples. Declarations import the
standard library only; loaders import NumPy, the readers and the built-in sets' packages
inside their bodies (see the package docstring for why).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw

# (data section, spec inputs {name: {"shape", "dtype"}} in order, the spec's folder,
#  {label input: class count the network predicts}) -> the arrays the source read
Loader = Callable[[dict, dict[str, dict], Path, dict[str, int]], "Raw"]

_LOADER_PARAMS = 4


class SourceError(TypeError):
    """A source declared without one of its required parts (a programming error, not a spec's)."""


@dataclass(frozen=True)
class Source:
    """One data source: ``name`` (what `data.source` says), ``doc`` (one line, for docs and
    schema), ``fields`` (the `data` keys only this kind of source reads -> JSON-Schema fragment,
    each with a description; ``{}`` when it reads none) and ``loader``.

    Keys every source shares (split, normalize, augment, columns, limit, seed) belong to the
    data section itself (spec/schema.py), not to a source."""

    name: str = ""
    doc: str = ""
    fields: Mapping[str, dict[str, Any]] | None = None
    loader: Loader | None = None

    def __post_init__(self) -> None:
        # Every missing part at once, so a new source is fixed in one go.
        missing = [part for part in ("name", "doc", "fields", "loader") if not _has(self, part)]
        who = f"data source '{self.name}'" if self.name else "a data source"
        if missing:
            raise SourceError(f"{who} is declared without its {', '.join(missing)}")
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise SourceError(f"{who}: the name must be a lower-case identifier")
        if "\n" in self.doc.strip():
            raise SourceError(f"{who}: the doc must be one line")
        for key, fragment in self.fields.items():
            if not isinstance(fragment, dict) or not fragment.get("description"):
                raise SourceError(f"{who}: field '{key}' needs a JSON-Schema fragment with a description")
        if not callable(self.loader) or len(inspect.signature(self.loader).parameters) != _LOADER_PARAMS:
            raise SourceError(f"{who}: the loader must be a function (data, inputs, base_dir, classes)")


def _has(source: Source, part: str) -> bool:
    value = getattr(source, part)
    return value is not None if part == "fields" else bool(value)


# -- field fragments several sources share ---------------------------------------------------------

PATH = {"type": "string", "description": "the data file, relative to the spec's folder"}


def samples(default: str) -> dict[str, Any]:
    """The `samples` field of a synthetic source, its default in words."""
    return {"type": "integer", "minimum": 1, "description": f"how many samples to generate ({default})"}


def noise(default: float) -> dict[str, Any]:
    """The `noise` field of a synthetic source (the standard deviation of its Gaussian noise)."""
    return {"type": "number", "minimum": 0, "description": f"the noise level (default {default:g})"}


# -- loaders several sources share -----------------------------------------------------------------


def builtin(name: str, read: Callable[[], tuple[Any, Any, int | None]]) -> Loader:
    """The loader of a set shipped inside an installed package: ``read`` returns (features,
    targets, class count or None); it runs once per process (runtime/data/sources.py caches it)."""

    def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
        from ..runtime.data.sources import builtin_raw

        return builtin_raw(name, read)

    return load


def sklearn_set(name: str, shape: tuple[int, ...] | None = None, classification: bool = True) -> Loader:
    """The loader of scikit-learn's ``load_<name>()`` set, its features reshaped to ``shape``."""

    def read() -> tuple[Any, Any, int | None]:
        from sklearn import datasets  # slow to import, and only these sources need it

        bunch = getattr(datasets, f"load_{name}")()
        x = bunch.data if shape is None else bunch.data.reshape(-1, *shape)
        return x, bunch.target, len(bunch.target_names) if classification else None

    return builtin(name, read)
