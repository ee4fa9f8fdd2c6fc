"""Bounds and refusals where values enter a spec (issue 9): huge and non-finite numbers, long
expressions, nested repeats, includes of files that are not specs, `$args` inside lists. Each
bad input ends, in every command that reads a spec, in located messages and exit code 1 —
never a traceback, never the text of a file that is not a spec."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import netc
from netc.cli import main

ROOT = Path(__file__).resolve().parents[2]

MLP = """\
netc: 1
inputs:
  x: {{shape: [8]}}
  y: {{shape: [], dtype: int64}}
modules:
  fc: {{op: linear, in: x, out_features: {out}}}
losses:
  ce: {{op: cross_entropy, in: [fc, y], weight: {weight}}}
train:
  epochs: {epochs}
"""


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _commands(tmp_path: Path) -> list[list[str]]:
    """Every command that reads a spec without training, with each report it can print."""
    return [
        ["validate"],
        ["compile"],
        ["compile", "--json"],
        ["compile", "--expand"],
        ["compile", "-o", str(tmp_path / "plan.json")],
        ["draw", "-o", str(tmp_path / "net.dot")],
    ]


def _fails_cleanly(code: int, out: str, err: str, where: str) -> None:
    assert code == 1
    assert "Traceback" not in err and "Error:" not in err  # no Python exception name either
    assert where in err, err
    assert err.rstrip().splitlines()[-1].endswith(("error", "errors", "warning", "warnings"))


# -- huge integers -------------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [500, 5000])
@pytest.mark.parametrize(("field", "line", "col"), [("out", 6, 41), ("weight", 8, 48), ("epochs", 10, 11)])
def test_huge_integers_are_one_located_error_in_every_command(tmp_path, capsys, digits, field, line, col):
    """500 digits once crashed the reports with OverflowError, over 4,300 the reader itself."""
    values = {"out": 3, "weight": 1, "epochs": 2, field: "1" + "0" * digits}
    spec = tmp_path / "big.yaml"
    spec.write_text(MLP.format(**values))
    for cmd in _commands(tmp_path):
        code, out, err = _cli([*cmd[:1], str(spec), *cmd[1:]], capsys)
        _fails_cleanly(
            code, out, err, f"big.yaml:{line}:{col}: error: integer 100000000000… ({digits + 1:,} digits)"
        )
        assert len(err) < 1000, "the number is not echoed back"
        assert out == ""


def test_a_size_above_2_31_is_refused_with_the_bound(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(MLP.format(out=2**31, weight=1, epochs=1))
    code, _, err = _cli(["compile", str(spec)], capsys)
    _fails_cleanly(
        code, "", err, "s.yaml:6:41: error: 'out_features' in module 'fc' (linear) must be at most 2147483647"
    )


BLOCK = """\
netc: 1
inputs:
  x: {{shape: [4]}}
blocks:
  b:
    args: {{c: {c}}}
    input: x
    modules:
      fc: {{op: linear, in: x, out_features: {expr}}}
modules:
  a: {{block: b, in: x}}
"""


@pytest.mark.parametrize(
    ("c", "expr", "message"),
    [
        (1, " + ".join(["$c"] * 1000), "has 999 operators; an expression may have 16"),  # was RecursionError
        (2**31 - 1, "$c * $c * $c * $c * $c", "is too large to compute"),
        (3, "$c // 0", "'$c // 0' divides by zero"),
        (3, "$c * 99999999999999", "the number 999999999999… in '$c * 99999999999999' is too large"),
    ],
)
def test_block_expressions_are_bounded_and_located(tmp_path, capsys, c, expr, message):
    spec = tmp_path / "e.yaml"
    spec.write_text(BLOCK.format(c=c, expr=expr))
    code, _, err = _cli(["compile", str(spec)], capsys)
    _fails_cleanly(code, "", err, "e.yaml:9:45: error: ")
    assert message in err


def test_expressions_keep_the_usual_precedence(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(BLOCK.format(c=6, expr="$c + $c * 2 - $c // 4 % 5 + 10 / 4 * 2"))
    (m,) = netc.load(spec).expanded.modules
    assert m.attrs["out_features"] == 6 + 6 * 2 - 6 // 4 % 5 + 10 / 4 * 2 == 22
    assert isinstance(m.attrs["out_features"], int)  # a whole float result is an int


# -- module counts and error counts --------------------------------------------------------------

NESTED = """\
netc: 1
inputs:
  x: {shape: [4]}
blocks:
  c:
    input: x
    modules:
      fc: {op: linear, in: x, out_features: 4}
  b:
    input: x
    modules:
      inner: {block: c, in: x, repeat: 99999}
  a:
    input: x
    modules:
      inner: {block: b, in: x, repeat: 99999}
modules:
  top: {block: a, in: x, repeat: 99999}
"""


def test_nested_repeats_are_counted_before_expanding(tmp_path, capsys):
    """It took 30 s and printed 200,000 errors; now one error, at once."""
    spec = tmp_path / "n.yaml"
    spec.write_text(NESTED)
    start = time.process_time()
    code, _, err = _cli(["validate", str(spec)], capsys)
    assert time.process_time() - start < 2
    _fails_cleanly(code, "", err, "n.yaml:18:34: error: module 'top' repeats block 'a' 99,999 times")
    assert err.count("error:") == 1 and err.rstrip().endswith("\n1 error")


def test_a_network_at_the_module_bound_is_refused_with_the_count(tmp_path, capsys):
    spec = tmp_path / "n.yaml"
    spec.write_text(NESTED.replace("repeat: 99999", "repeat: 50"))  # 125,000 modules
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, "more than the 100,000 modules netc compiles")
    assert "one instance of 'a' makes 2,500 module(s)" in err


def test_blocks_nested_too_deep_are_one_error(tmp_path, capsys):
    blocks = "".join(
        f"  b{i}:\n    input: x\n    modules:\n      m: {{block: b{i + 1}, in: x}}\n" for i in range(40)
    )
    blocks += "  b40:\n    input: x\n    modules:\n      m: {op: relu, in: x}\n"
    spec = tmp_path / "deep.yaml"
    spec.write_text(
        f"netc: 1\ninputs:\n  x: {{shape: [4]}}\nblocks:\n{blocks}modules:\n  top: {{block: b0, in: x}}\n"
    )
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, "blocks nest more than 32 deep here: b0 → b1 → b2 → … → b32")


def test_the_cli_prints_50_errors_then_how_many_more(tmp_path, capsys):
    mods = "".join(f"  m{i}: {{op: relu, in: x, bogus: 1}}\n" for i in range(120))
    spec = tmp_path / "many.yaml"
    spec.write_text(f"netc: 1\ninputs:\n  x: {{shape: [4]}}\nmodules:\n{mods}")
    code, _, err = _cli(["validate", str(spec)], capsys)
    assert code == 1
    lines = err.rstrip().splitlines()
    assert sum(": error: " in line for line in lines) == 50
    assert lines[-2:] == ["… and 70 more", "120 errors"]


def test_a_single_error_prints_its_count_line(tmp_path, capsys):
    code, _, err = _cli(["validate", str(ROOT / "tests/spec/bad/op_typo.yaml")], capsys)
    assert code == 1 and err.rstrip().splitlines()[-1] == "1 error"


# -- non-finite numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        ("train: {optimizer: {type: sgd, lr: .nan}}", "/train/optimizer/lr"),
        ("train: {optimizer: {type: adam, betas: [0.9, .nan]}}", "/train/optimizer/betas/1"),
        ("train: {grad_clip: {norm: .inf}}", "/train/grad_clip/norm"),
        ("train: {early_stopping: {min_delta: .NaN}}", "/train/early_stopping/min_delta"),
        ("data: {source: iris, split: {val: -.inf}}", "/data/split/val"),
        ("data: {source: blobs, noise: 1e999}", "/data/noise"),
    ],
)
def test_nan_and_infinity_are_refused_in_train_and_data(tmp_path, capsys, yaml_text, where):
    spec = tmp_path / "f.yaml"
    spec.write_text(MLP.format(out=3, weight=1, epochs=1).replace("train:\n  epochs: 1\n", yaml_text + "\n"))
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, f"(at {where})")
    assert "NaN is not allowed" in err or "is not a finite number" in err


# -- includes ------------------------------------------------------------------------------------

SECRET = "root:x:0:0:hunter2:/root:/bin/bash"


def _including(folder: Path, target: str) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(
        f"netc: 1\ninclude: {target}\ninputs:\n  x: {{shape: [4]}}\nmodules:\n  r: {{op: relu, in: x}}\n"
    )
    return spec


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("text.yaml", SECRET + "\n", "is not a netc spec: it has no `netc: 1` key"),
        ("list.yaml", f"- {SECRET}\n- two\n", "is not a netc spec: it has no `netc: 1` key"),
        ("broken.yaml", f"a: [{SECRET}\nb: 'x\n", "is not a netc spec: not valid YAML at line 2, column 2"),
        ("tabs.yaml", f"\t{SECRET}: 1\n", "is not a netc spec: not valid YAML at line 1, column 1"),
        (
            "alias.yaml",
            f"a: *{SECRET.replace(':', '_')}\n",
            "is not a netc spec: not valid YAML at line 1, column 24",
        ),
        ("bytes.yaml", None, "is not a netc spec: not UTF-8 text at line 1, column 6"),
    ],
)
def test_an_include_that_is_no_spec_is_named_but_never_quoted(tmp_path, capsys, name, content, message):
    """`include: /etc/passwd` printed the password file; `/etc/shadow` its first line."""
    target = tmp_path / name
    if content is None:
        target.write_bytes(b"root:\xff" + SECRET.encode())
    else:
        target.write_text(content)
    spec = _including(tmp_path, name)
    for cmd in _commands(tmp_path):
        code, _, err = _cli([*cmd[:1], str(spec), *cmd[1:]], capsys)
        _fails_cleanly(code, "", err, f"spec.yaml:2:10: error: included file {name} {message}")
        assert "hunter2" not in err and ":0:0:" not in err


@pytest.mark.parametrize(
    "target", ["../../../../../../../../etc/passwd", "/etc/passwd", "/etc/shadow", "/dev/zero"]
)
def test_system_files_are_refused_before_they_are_read(tmp_path, capsys, target):
    spec = _including(tmp_path, target)
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, f"spec.yaml:2:10: error: include '{target}' is not a .yaml or .yml file")
    assert ":0:0:" not in err


def test_a_spec_named_yaml_that_links_to_a_system_file_is_not_quoted(tmp_path, capsys):
    (tmp_path / "evil.yaml").symlink_to("/etc/passwd")
    code, _, err = _cli(["validate", str(_including(tmp_path, "evil.yaml"))], capsys)
    _fails_cleanly(code, "", err, "included file evil.yaml is not a netc spec")
    assert ":0:0:" not in err


def test_a_spec_that_is_plain_text_is_not_quoted(tmp_path, capsys):
    spec = tmp_path / "notes.yaml"
    spec.write_text(SECRET + "\n")
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, "notes.yaml:1:1: error: a spec must be a mapping of sections")
    assert "hunter2" not in err


def test_a_fifo_or_a_device_is_refused_without_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    code, _, err = _cli(["validate", str(_including(tmp_path, "pipe.yaml"))], capsys)
    _fails_cleanly(code, "", err, "spec.yaml:2:10: error: ")
    assert "is not a regular file" in err
    code, _, err = _cli(["validate", "/dev/zero"], capsys)
    _fails_cleanly(code, "", err, "/dev/zero is not a regular file")


@pytest.mark.parametrize("target", ["a\x00.yaml", "x" * 5000 + ".yaml"])
def test_an_unusable_include_path_is_one_message(tmp_path, capsys, target):
    spec = tmp_path / "spec.yaml"
    quoted = target.replace("\x00", "\\0")  # YAML's escape for a NUL byte
    spec.write_text(
        f'netc: 1\ninclude: "{quoted}"\ninputs:\n  x: {{shape: [4]}}\nmodules:\n  r: {{op: relu, in: x}}\n'
    )
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, "spec.yaml:2:10: error: include '")
    assert "is not a usable path" in err


LIB = """\
netc: 1
include: {inner}
blocks:
  dense:
    input: x
    modules:
      fc: {{block: act, in: x}}
"""


def test_include_paths_are_relative_to_the_including_file(tmp_path, monkeypatch):
    """Relative to the file that holds the `include:` (in an included file too), not to the
    current directory; `..` climbs; an absolute path is used as written."""
    (tmp_path / "lib" / "more").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text(LIB.format(inner="more/act.yaml"))
    (tmp_path / "lib" / "more" / "act.yaml").write_text(
        "netc: 1\nblocks:\n  act:\n    input: x\n    modules:\n      r: {op: relu, in: x}\n"
    )
    body = "inputs:\n  x: {shape: [4]}\nmodules:\n  d: {block: dense, in: x}\n"
    rel = tmp_path / "project" / "rel.yaml"
    rel.write_text("netc: 1\ninclude: ../lib/blocks.yaml\n" + body)
    absolute = tmp_path / "project" / "abs.yaml"
    absolute.write_text(f"netc: 1\ninclude: {tmp_path / 'lib' / 'blocks.yaml'}\n" + body)
    monkeypatch.chdir(tmp_path / "lib" / "more")  # a relative path must not depend on this
    for spec in (rel, absolute):
        assert [m.name for m in netc.load(spec).expanded.modules] == ["d.fc.r"]


# -- $args inside lists --------------------------------------------------------------------------

LISTS = """\
netc: 1
inputs:
  x: {shape: [3, 8, 8]}
blocks:
  b:
    args: {k: 3, p: 1, c: 2}
    input: x
    modules:
      conv: {op: conv2d, in: x, out_channels: $c * 2, kernel: [1, $k], padding: [$p, $p, 0, 0]}
      r: {op: reshape, in: conv, shape: [$c * 2, 10, 3 ]}
      pool: {op: maxpool2d, in: r, kernel: [$p, 2], stride: [1, $c // 2]}
modules:
  a: {block: b, in: x, k: 6, p: 1, c: 4}
"""


def test_block_arguments_work_inside_lists(tmp_path):
    spec = tmp_path / "l.yaml"
    spec.write_text(LISTS.replace("[$c * 2, 10, 3 ]", "[$c * 2, 10, 3]"))
    net = netc.load(spec)
    mods = {m.name: m for m in net.expanded.modules}
    assert mods["a.conv"].attrs["kernel"] == [1, 6]
    assert mods["a.conv"].attrs["padding"] == [1, 1, 0, 0]
    assert mods["a.r"].attrs["shape"] == [8, 10, 3]
    assert mods["a.pool"].attrs["stride"] == [1, 2]
    assert net.shaped.types["a.conv"].shape == (8, 10, 3)
    net.compile(batch=2)


def test_a_bad_argument_inside_a_list_is_located_at_its_item(tmp_path, capsys):
    spec = tmp_path / "l.yaml"
    spec.write_text(LISTS.replace("kernel: [1, $k]", "kernel: [1, $kk]"))
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(code, "", err, "(at /blocks/b/modules/conv/kernel/1)")
    assert "unknown block argument '$kk' in block 'b'" in err and "did you mean '$k'?" in err


def test_a_text_value_in_a_list_names_where_it_was_given(tmp_path, capsys):
    spec = tmp_path / "l.yaml"
    spec.write_text(LISTS.replace("k: 6,", "k: six,"))
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(
        code, "", err, "l.yaml:9:67: error: item 1 of 'kernel' in module 'conv' (conv2d) of block 'b'"
    )
    assert f"$k is 'six', given at {spec}:13:27" in err


def test_arguments_stay_inside_blocks_in_lists_too(tmp_path, capsys):
    spec = tmp_path / "top.yaml"
    spec.write_text(
        "netc: 1\ninputs:\n  x: {shape: [3, 8, 8]}\nmodules:\n  p: {op: maxpool2d, in: x, kernel: [1, $k]}\n"
    )
    code, _, err = _cli(["validate", str(spec)], capsys)
    _fails_cleanly(
        code,
        "",
        err,
        "top.yaml:5:41: error: item 1 of 'kernel' in module 'p' (maxpool2d) must be an integer, got '$k'",
    )


# -- messages ------------------------------------------------------------------------------------


def test_did_you_mean_only_for_close_names():
    from netc.spec.errors import did_you_mean

    assert did_you_mean("kernal", ["kernel", "stride"]) == "did you mean 'kernel'?"
    assert did_you_mean("lienar", ["linear", "relu"]) == "did you mean 'linear'?"
    assert did_you_mean("conv_transpose2d", ["transpose", "conv2d"]) == ""
    assert did_you_mean("int8", ["float32", "int64"]) == ""


def test_dtype_int8_lists_the_dtypes_without_a_guess():
    with pytest.raises(netc.SpecError) as e:
        netc.load(ROOT / "tests/spec/bad/dtype_int8.yaml")
    (d,) = e.value.diagnostics
    assert "expected one of: float32, int64" in d.message and d.hint == ""


def test_linear_on_an_image_warns_and_the_warning_travels_with_the_loss_error(tmp_path, capsys):
    spec = tmp_path / "img.yaml"
    spec.write_text(
        "netc: 1\ninputs:\n  x: {shape: [3, 8, 8]}\n  y: {shape: [], dtype: int64}\n"
        "modules:\n  fc: {op: linear, in: x, out_features: 10}\n"
        "losses:\n  ce: {op: cross_entropy, in: [fc, y]}\n"
    )
    code, _, err = _cli(["compile", str(spec)], capsys)
    _fails_cleanly(code, "", err, "img.yaml:6:7: warning: module 'fc': linear acts on the last axis only")
    assert "put a `flatten`" in err and "img.yaml:8:" in err and err.rstrip().endswith("1 error, 1 warning")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_example_warns_about_linear(path):
    """Transformers apply linear to [T, D] per sample: that is not the mistake warned about."""
    assert not [w for w in netc.load(path).warnings if "linear acts" in w.message]


def test_an_argument_that_turns_in_into_a_number_is_located(tmp_path, capsys):
    """Found by the fuzzer (case 18268, seed 7): `in: $c // 2 + 1` is text to the schema and a
    number once substituted; it was a TypeError in the expander."""
    spec = tmp_path / "l.yaml"
    spec.write_text(LISTS.replace("conv: {op: conv2d, in: x,", "conv: {op: conv2d, in: $c // 2 + 1,"))
    code, _, err = _cli(["validate", str(spec)], capsys)
    where = "/blocks/b/modules/conv/in"
    _fails_cleanly(code, "", err, f"error: 'in' must be a module name or a list of them, got 3 (at {where})")
    assert f"$c is 4, given at {spec}:13" in err
