"""schemas/network.schema.json: current, valid Draft 2020-12, and in every example."""

from pathlib import Path

import jsonschema
import yaml

from netc.spec.schema import build_schema, committed_schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current():
    assert committed_schema() == build_schema(), (
        "schemas/network.schema.json is stale; regenerate it with\n"
        "  python -c \"from netc.spec.schema import render; print(render(), end='')\""
        " > schemas/network.schema.json"
    )


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(committed_schema())


def test_every_module_object_forbids_unknown_keys():
    defs = committed_schema()["$defs"]
    ops = [k for k in defs if k.startswith(("op.", "block_op.", "seq_op."))]
    assert ops and all(defs[k]["additionalProperties"] is False for k in ops)


def test_every_example_names_the_schema_and_validates_with_plain_jsonschema():
    files = sorted((ROOT / "examples").rglob("*.yaml"))
    assert files
    for f in files:
        first = f.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), f
        target = (f.parent / first.split("$schema=", 1)[1]).resolve()
        assert target == (ROOT / "schemas" / "network.schema.json").resolve(), f
        data = yaml.safe_load(f.read_text())
        if "inputs" in data:  # included block files hold only blocks
            jsonschema.validate(data, committed_schema())
