"""Every spec in tests/spec/bad/ fails with exactly the diagnostics its header states.

A bad spec starts with comment lines: a description, then one line per expected error, in
the order netc reports them, each optionally followed by the exact hint::

    # a misspelt attribute gets a did-you-mean
    # expect: 8:48: unknown attribute 'kernal' in module 'c1' (conv2d)
    #   hint: did you mean 'kernel'?

``LINE:COL`` is in the spec itself, or ``other/file.yaml:LINE:COL`` (relative to the spec)
for an error inside an included file. Line numbers count the header. Specs in
tests/spec/warn/ are valid and state their ``# warning:`` lines the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import netc
from netc.cli import main

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))
WARN = sorted((HERE / "warn").glob("*.yaml"))
LINE = re.compile(
    r"^# (?P<kind>expect|warning): (?:(?P<file>[^:\s]+\.ya?ml):)?(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$"
)
HINT = re.compile(r"^#\s+hint: (?P<hint>.+)$")


@dataclass
class Expected:
    file: Path
    line: int
    col: int
    message: str
    hint: str | None = None  # None: not checked

    def cli_text(self, severity: str) -> str:
        """How `netc validate` prints it (the file as the diagnostic names it)."""
        return f":{self.line}:{self.col}: {severity}: {self.message}"


def expectations(path: Path, kind: str) -> list[Expected]:
    out: list[Expected] = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not text.startswith("#"):
            break
        if (m := LINE.match(text)) and m["kind"] == kind:
            file = (path.parent / m["file"]).resolve() if m["file"] else path.resolve()
            out.append(Expected(file, int(m["line"]), int(m["col"]), m["msg"]))
        elif (h := HINT.match(text)) and out:
            out[-1].hint = h["hint"]
    return out


def _got(d: netc.Diagnostic) -> Expected:
    assert d.location is not None, f"diagnostic without a location: {d}"
    return Expected(Path(d.location.file).resolve(), d.location.line, d.location.col, d.message, d.hint)


def _compare(got: list[netc.Diagnostic], want: list[Expected]) -> None:
    actual = [_got(d) for d in got]
    for a, w in zip(actual, want, strict=False):
        if w.hint is None:
            a.hint = None
    assert actual == want


def test_there_are_enough_bad_specs():
    assert len(BAD) >= 35


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_reports_exactly_its_expected_errors(path: Path):
    want = expectations(path, "expect")
    assert want, f"{path.name} states no `# expect:` line"
    with pytest.raises(netc.SpecError) as e:
        netc.load(path).compile(batch=2)
    assert all(d.severity == "error" for d in e.value.diagnostics)
    _compare(e.value.diagnostics, want)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_netc_validate_prints_each_error_and_exits_1(path: Path, capsys):
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    want = expectations(path, "expect")
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == len(want)
    for line, w in zip(lines, want, strict=True):
        assert w.cli_text("error") in line
        assert Path(line.split(":")[0]).resolve() == w.file
    if len(want) > 1:
        assert err.rstrip().endswith(f"{len(want)} errors")


@pytest.mark.parametrize("name", ["multi_errors", "yaml_tab", "cycle"])
def test_netc_validate_in_a_subprocess_exits_1_without_traceback(name: str):
    path = HERE / "bad" / f"{name}.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "netc.cli", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    for w in expectations(path, "expect"):
        assert w.cli_text("error") in r.stderr


@pytest.mark.parametrize("path", WARN, ids=[p.stem for p in WARN])
def test_warnings_are_reported_and_validate_exits_0(path: Path, capsys):
    want = expectations(path, "warning")
    assert want
    net = netc.load(path)
    assert all(w.severity == "warning" for w in net.warnings)
    _compare(net.warnings, want)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "ok" in out and f"{len(want)} warning(s)" in out
    lines = [line for line in err.splitlines() if ": warning: " in line]
    assert len(lines) == len(want)
    for line, w in zip(lines, want, strict=True):
        assert line.startswith(str(path)) and w.cli_text("warning") in line


@pytest.mark.parametrize(
    ("text", "message"), [("", "the spec file is empty"), ("\n  \n", "the spec file is empty")]
)
def test_an_empty_file_is_one_error_at_1_1(tmp_path: Path, text: str, message: str):
    p = tmp_path / "e.yaml"
    p.write_text(text)
    with pytest.raises(netc.SpecError) as e:
        netc.load(p)
    (d,) = e.value.diagnostics
    assert (d.location.line, d.location.col, d.message) == (1, 1, message)


def test_header_parser_reads_files_and_hints():
    (w,) = expectations(HERE / "bad" / "include_cycle.yaml", "expect")
    assert w.file == (HERE / "bad" / "includes" / "cycle_b.yaml").resolve()
    assert (w.line, w.col) == (2, 11) and w.hint
