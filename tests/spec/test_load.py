"""spec/load.py: YAML with a source map, safe loading, duplicate keys."""

import pytest

from netc.spec.errors import SpecError
from netc.spec.load import load, parse


def test_source_map_points_at_values_and_keys():
    doc = parse("netc: 1\nmodules:\n  fc: {op: linear, in: x}\n", "f.yaml")
    assert doc.data["modules"]["fc"]["op"] == "linear"
    assert (doc.values["/modules/fc/op"].line, doc.values["/modules/fc/op"].col) == (3, 12)
    assert (doc.keys["/modules/fc"].line, doc.keys["/modules/fc"].col) == (3, 3)
    # An unknown pointer falls back to its nearest parent.
    assert doc.where("/modules/fc/nope").line == 3


def test_scientific_floats_without_dot_are_floats():
    doc = parse("netc: 1\nlr: 1e-3\nb: 2.5E+2\nname: e5x\n")
    assert doc.data["lr"] == pytest.approx(1e-3) and isinstance(doc.data["lr"], float)
    assert doc.data["b"] == 250.0
    assert doc.data["name"] == "e5x"


def test_duplicate_keys_are_errors():
    with pytest.raises(SpecError) as e:
        parse("netc: 1\nmodules:\n  a: {op: relu}\n  a: {op: tanh}\n", "d.yaml")
    (d,) = e.value.diagnostics
    assert d.message == "module 'a' is defined twice (first at line 3)"
    assert (d.location.line, d.location.col) == (4, 3)


def test_unsafe_tags_are_refused():
    with pytest.raises(SpecError) as e:
        parse("netc: !!python/object/apply:os.system ['echo hi']\n")
    assert "YAML" in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the spec file is empty"),
        ("- a\n- b\n", "a spec must be a mapping"),
        ("a: [1\n", "YAML syntax error"),
    ],
)
def test_bad_documents(text, message):
    with pytest.raises(SpecError) as e:
        parse(text, "x.yaml")
    assert message in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load(tmp_path / "nope.yaml")


def test_include_loads_blocks_file(spec_file):
    spec_file("netc: 1\nblocks: {}\n", "lib.yaml")
    p = spec_file("netc: 1\ninclude: lib.yaml\ninputs: {x: {shape: [1]}}\n")
    doc = load(p)
    assert [d.file.endswith("lib.yaml") for d in doc.includes] == [True]
