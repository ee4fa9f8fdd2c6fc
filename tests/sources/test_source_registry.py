"""The data-source registry (netc.sources): a source declared without one of its parts fails
naming the part, every file is registered and documented, the schema reads the declarations,
a registered source feeds load_dataset, and importing the registry stays cheap."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import netc.runtime.data.dataset as dataset_mod
import netc.spec.schema as schema_mod
from netc.runtime.data import load_dataset
from netc.sources import FIELDS, NAMES, SOURCES, Source, SourceError, merge_fields, register

ROOT = Path(__file__).resolve().parents[2]


def _load(data, inputs, base_dir, classes):
    from netc.runtime.data.sources import xy

    return xy(np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1]), "data.source: toy", 2)


PARTS = {"name": "toy", "doc": "four points", "fields": {}, "loader": _load}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_source_without_a_required_part_fails_naming_it(part):
    with pytest.raises(SourceError, match=rf"without its {part}$"):
        Source(**{k: v for k, v in PARTS.items() if k != part})


def test_every_missing_part_is_named_at_once():
    with pytest.raises(SourceError, match="a data source is declared without its name, doc, fields, loader"):
        Source()


def test_fields_need_a_schema_fragment_with_a_description():
    with pytest.raises(SourceError, match="'toy': field 'size' needs a JSON-Schema fragment"):
        Source(**{**PARTS, "fields": {"size": {"type": "integer"}}})
    with pytest.raises(SourceError, match="field 'size'"):
        Source(**{**PARTS, "fields": {"size": "an integer"}})


def test_the_loader_must_take_data_inputs_base_dir_classes():
    with pytest.raises(SourceError, match=r"'toy': the loader must be a function \(data, inputs"):
        Source(**{**PARTS, "loader": lambda data: None})


def test_a_module_without_source_or_with_another_name_is_refused():
    empty = types.ModuleType("netc.sources.toy")
    with pytest.raises(SourceError, match=r"netc\.sources\.toy declares no SOURCE"):
        register([empty])
    other = types.ModuleType("netc.sources.other")
    other.SOURCE = Source(**PARTS)
    with pytest.raises(SourceError, match="declares data source 'toy'; name it 'other'"):
        register([other])


def test_sources_sharing_a_field_must_agree_on_its_schema():
    a = Source(**{**PARTS, "name": "a", "fields": {"n": {"type": "integer", "description": "count"}}})
    b = Source(**{**PARTS, "name": "b", "fields": {"n": {"type": "number", "description": "count"}}})
    with pytest.raises(SourceError, match="'b' declares field 'n'"):
        merge_fields([a, b])
    c = Source(**{**PARTS, "name": "c", "fields": {"n": {"type": "integer", "description": "how many"}}})
    assert merge_fields([a, c])["n"] == {"type": "integer", "description": "a: count; c: how many"}


def test_a_source_may_not_redefine_a_key_of_the_data_section(monkeypatch):
    monkeypatch.setattr(schema_mod, "SOURCE_FIELDS", {"seed": {"type": "string", "description": "x"}})
    with pytest.raises(ValueError, match="redefine the data section's own keys: seed"):
        schema_mod.build_schema()


def test_every_file_is_registered_and_every_source_documented():
    files = {p.stem for p in (ROOT / "sources").glob("*.py")} - {"__init__", "base"}
    assert files == set(NAMES)
    assert list(SOURCES) == list(NAMES)
    docs = (ROOT / "docs" / "data.md").read_text()
    for name in NAMES:
        assert f"| `{name}` |" in docs, f"docs/data.md's source table lacks `{name}`"


def test_the_schema_reads_the_declarations():
    data = schema_mod.build_schema()["properties"]["data"]
    assert data["properties"]["source"]["enum"] == list(NAMES)
    assert data["properties"]["source"]["enumDescriptions"] == [s.doc for s in SOURCES.values()]
    for key, fragment in FIELDS.items():
        assert data["properties"][key]["description"] == fragment["description"]
    assert data["properties"]["labels"]["description"].startswith("idx: ")


def test_a_registered_source_feeds_load_dataset(monkeypatch, tmp_path):
    monkeypatch.setitem(dataset_mod.SOURCES, "toy", Source(**PARTS))
    inputs = {"x": {"shape": [2]}, "y": {"shape": [], "dtype": "int64"}}
    ds = load_dataset({"source": "toy"}, inputs, tmp_path)
    assert ds.arrays["x"].shape == (4, 2) and ds.num_classes == 2 and ds.task == "classification"


def test_importing_the_registry_and_the_schema_loads_nothing_heavy():
    heavy = ["numpy", "numba", "sklearn", "mlxtend", "matplotlib", "scipy", "netc.runtime"]
    code = f"import sys, netc.sources, netc.spec.schema; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
