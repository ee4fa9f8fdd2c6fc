"""Mistakes on the command line end in one clear message on stderr and exit code 1, never a
traceback. Some cases run ``python -m netc.cli`` in a subprocess, to prove that nothing
escapes ``main`` (argparse's own exit code 2, an uncaught OSError)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from netc.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "xor_mlp.yaml"
BAD = ROOT / "tests" / "spec" / "bad" / "op_typo.yaml"


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netc.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def _one_message(err: str) -> str:
    """The message without argparse's trailing pointer to --help, or a spec error's count line."""
    lines = [
        line
        for line in err.strip().splitlines()
        if not line.startswith("(see `netc") and not re.fullmatch(r"\d+ errors?", line)
    ]
    assert len(lines) == 1, err
    return lines[0]


# (arguments, the message netc prints)
CASES = {
    "batch_huge": (
        ["compile", str(SPEC), "--batch", "99999999999999"],
        "netc compile: argument --batch: expected a positive integer of at most 2,147,483,647, "
        "got 99999999999999",
    ),
    "tol_nan": (  # a NaN tolerance would let every gradient pass
        ["gradcheck", str(SPEC), "--tol", "nan"],
        "netc gradcheck: argument --tol: expected a finite number >= 0, got nan",
    ),
    "seed_negative": (
        ["run", str(SPEC), "--seed", "-1"],
        "netc run: argument --seed: expected an integer from 0 to 2**63 - 1, got -1",
    ),
    "seed_huge": (
        ["run", str(SPEC), "--seed", str(2**64)],
        f"netc run: argument --seed: expected an integer from 0 to 2**63 - 1, got {2**64}",
    ),
    "batch_zero": (
        ["compile", str(SPEC), "--batch", "0"],
        "netc compile: argument --batch: expected a positive integer, got 0",
    ),
    "batch_negative": (
        ["compile", str(SPEC), "--batch", "-3"],
        "netc compile: argument --batch: expected a positive integer, got -3",
    ),
    "batch_word": (
        ["compile", str(SPEC), "--batch", "abc"],
        "netc compile: argument --batch: expected a positive integer, got 'abc'",
    ),
    "batch_float": (
        ["compile", str(SPEC), "--batch", "2.5"],
        "netc compile: argument --batch: expected a positive integer, got '2.5'",
    ),
    "batch_missing_value": (
        ["compile", str(SPEC), "--batch"],
        "netc compile: argument --batch: expected one argument",
    ),
    "unknown_flag": (["compile", str(SPEC), "--frobnicate"], "netc: unrecognized arguments: --frobnicate"),
    "extra_argument": (["validate", str(SPEC), "extra.yaml"], "netc: unrecognized arguments: extra.yaml"),
    "no_command": ([], "netc: the following arguments are required: COMMAND"),
    "no_spec": (["validate"], "netc validate: the following arguments are required: spec"),
    "missing_spec_file": (["compile", "no/such/spec.yaml"], "error: no such spec file: no/such/spec.yaml"),
    "spec_is_a_directory": (["validate", "examples"], "error: examples is a folder, not a spec file"),
    "output_folder_missing": (
        ["compile", str(SPEC), "-o", "no/such/folder/plan.json"],
        "netc: cannot write no/such/folder/plan.json: the folder no/such/folder does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_command_line_is_one_message_and_exit_1(case: str, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    args, message = CASES[case]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert _one_message(err) == message


def test_unknown_command_names_the_commands(capsys):
    assert main(["frobnicate", str(SPEC)]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert msg.startswith("netc: argument COMMAND: invalid choice: 'frobnicate' (choose from ")
    assert "'validate'" in msg and "'compile'" in msg


def test_unknown_optimizer_names_the_choices(capsys):
    assert main(["compile", str(SPEC), "--optimizer", "adamm"]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert msg.startswith("netc compile: argument --optimizer: invalid choice: 'adamm' (choose from ")


def test_usage_errors_point_to_help(capsys):
    assert main(["compile", str(SPEC), "--batch", "0"]) == 1
    assert capsys.readouterr().err.rstrip().endswith("(see `netc compile --help`)")


def test_output_that_is_a_directory(tmp_path: Path, capsys):
    assert main(["compile", str(SPEC), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert _one_message(err).startswith(f"netc: cannot write {tmp_path}: ") and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_good_spec_with_a_good_output_still_works(tmp_path: Path, capsys):
    plan = tmp_path / "plan.json"
    assert main(["compile", str(SPEC), "--batch", "2", "-o", str(plan)]) == 0
    assert plan.read_text().startswith("{")


SUBPROCESS_CASES = [
    "batch_zero",
    "batch_word",
    "unknown_flag",
    "no_command",
    "missing_spec_file",
    "spec_is_a_directory",
    "output_folder_missing",
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_in_a_subprocess_no_traceback_escapes(case: str):
    args, message = CASES[case]
    r = _cli(args)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert _one_message(r.stderr) == message
    assert r.stdout == ""


def test_unknown_command_in_a_subprocess():
    r = _cli(["frobnicate", str(SPEC)])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "invalid choice: 'frobnicate'" in r.stderr


def test_a_bad_spec_in_a_subprocess_is_its_diagnostics_and_exit_1():
    r = _cli(["compile", str(BAD), "--batch", "2"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ": error: unknown op 'linaer' in module 'h'" in r.stderr
    assert "hint: did you mean 'linear'?" in r.stderr


def test_a_spec_that_is_not_utf8(tmp_path: Path, capsys):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("netc: 1\nname: caf\xe9\n".encode("latin-1"))
    assert main(["validate", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:2:10: error: the file is not UTF-8 text: byte 0xe9 cannot be read" in err
    assert "Traceback" not in err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "validate" in capsys.readouterr().out
