"""Every `yaml` example in docs/spec.md compiles, so the reference stays true."""

import re
from pathlib import Path

import pytest

import netc

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "spec.md").read_text(), re.S)


def test_the_reference_has_examples():
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("text", BLOCKS, ids=[re.search(r"name: (\w+)", b).group(1) for b in BLOCKS])
def test_doc_example_compiles(text, tmp_path):
    # Examples include ../examples/...: mirror the repo layout around the file.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "docs").mkdir()
    spec = tmp_path / "docs" / "example.yaml"
    spec.write_text(text)
    net = netc.load(spec)
    assert not net.warnings, [str(w) for w in net.warnings]
    plan = net.compile(batch=2)
    assert plan.modules
