"""`netc validate` and `netc compile`: output, JSON keys, plan file, no numba."""

import json
import subprocess
import sys
from pathlib import Path

from netc.cli import main

ROOT = Path(__file__).resolve().parents[2]
LENET = ROOT / "examples" / "lenet5.yaml"


def test_validate_ok(capsys):
    assert main(["validate", str(LENET)]) == 0
    assert "ok" in capsys.readouterr().out


def test_compile_json_has_the_promised_keys(capsys):
    assert main(["compile", str(LENET), "--json", "--batch", "8", "--optimizer", "adam"]) == 0
    d = json.loads(capsys.readouterr().out)
    for k in (
        "name",
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "forward_flops",
        "backward_flops",
    ):
        assert isinstance(d[k], int | str)
    mem = d["memory"]
    for k in (
        "batch", "params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes",
        "workspace_bytes", "inference_peak_bytes", "training_peak_bytes",
    ):  # fmt: skip
        assert isinstance(mem[k], int), k
    assert mem["batch"] == 8 and mem["optimizer_bytes"] == 2 * mem["grads_bytes"]
    row = d["modules"][0]
    assert set(row) >= {"name", "op", "output_shape", "params", "forward_flops"}
    assert sum(r["params"] for r in d["modules"]) == d["total_params"]


def test_compile_table_and_plan_file(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["compile", str(LENET)]) == 0
    table = capsys.readouterr().out
    assert "training-step peak" in table and "FLOPs/sample" in table
    assert main(["compile", str(LENET), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["netc_plan"] == 1


def test_expand_prints_a_spec_netc_can_load_again(tmp_path, capsys):
    spec = ROOT / "examples" / "resnet18.yaml"
    assert main(["compile", str(spec), "--expand"]) == 0
    flat = tmp_path / "flat.yaml"
    flat.write_text(capsys.readouterr().out)
    assert main(["compile", str(flat), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    main(["compile", str(spec), "--json"])
    b = json.loads(capsys.readouterr().out)
    assert a["total_params"] == b["total_params"] and a["forward_flops"] == b["forward_flops"]
    assert "stage1" not in {m["name"] for m in a["modules"]}


def test_compile_never_imports_numba():
    code = (
        "import sys, contextlib, io\n"
        "from netc.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main(['compile', {str(LENET)!r}, '--json'])\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main(['validate', {str(LENET)!r}])\n"
        "assert 'numba' not in sys.modules and 'networkx' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resnet18_counts_running_statistics_as_buffers_not_parameters(capsys):
    """PyTorch and the paper say 11,689,512; the 9,600 BatchNorm running
    statistics are buffers, reported apart (and still in the memory ledger)."""
    spec = ROOT / "examples" / "resnet18.yaml"
    assert main(["compile", str(spec), "--json", "--batch", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total_params"] == d["trainable_params"] == 11_689_512
    assert d["non_trainable_params"] == 0 and d["buffers"] == 9_600
    assert sum(r["buffers"] for r in d["modules"]) == d["buffers"]
    assert d["memory"]["params_bytes"] == 4 * (11_689_512 + 9_600)
    assert main(["compile", str(spec), "--batch", "1"]) == 0
    table = capsys.readouterr().out
    assert "params        11,689,512 trainable · 0 non-trainable (frozen)\n" in table
    assert "buffers       9,600 (BatchNorm running statistics)\n" in table
    assert "11,699,112" not in table


def test_frozen_parameters_are_the_non_trainable_figure(tmp_path, capsys):
    spec = tmp_path / "frozen.yaml"
    spec.write_text(LENET.read_text().replace("op: linear,", "op: linear, trainable: false,", 1))
    assert main(["compile", str(spec), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["non_trainable_params"] > 0 and d["buffers"] == 0
    assert d["trainable_params"] + d["non_trainable_params"] == d["total_params"]
