"""`netc run`, `eval`, `predict` and `lr-find` in-process through ``netc.cli.main``: Ctrl-C and
the resume command, divergence, --overfit-batch, every kind of bad input (one message, exit 1,
no traceback, the run directory untouched) and the files the commands write."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tinyspec import classifier

from netc.cli import main
from netc.runtime import checkpoint as ck
from netc.runtime.store import atomic, records

QUIET = ["--quiet", "--no-plots"]
SILENT = ["--silent", "--no-plots"]  # errors only: a failure prints its one message
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SPEC = classifier(
    "tiny",
    """
    optimizer: {type: adam, lr: 0.01}
    batch_size: 8
    epochs: 2
    seed: 1
    """,
    "{source: npz, path: DATA, split: {val: 0.2}}",
)


def _spec(d: Path, name: str, data: str = "data.npz", text: str = SPEC) -> Path:
    p = d / name
    p.write_text(text.replace("DATA", data))
    return p


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A folder with a spec, its data, bad data files and one finished run ("good")."""
    d = tmp_path_factory.mktemp("ws")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    label = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    np.savez(d / "data.npz", x=x, label=label)
    np.savez(d / "wrong_shape.npz", x=rng.normal(size=(40, 3)).astype(np.float32), label=label)
    nan = x.copy()
    nan[5, 1] = np.nan
    np.savez(d / "nan.npz", x=nan, label=label)
    np.savez(d / "range.npz", x=x, label=label + 2)
    (d / "bad.npz").write_bytes(b"PK\x03\x04 this is no zip archive")
    (d / "bad.csv").write_text("1.0,2.0,0\n3.0,abc,1\n")
    np.savez(d / "predict_wrong.npz", x=rng.normal(size=(5, 7)).astype(np.float32))
    np.savez(d / "inputs.npz", x=rng.normal(size=(11, 2)).astype(np.float32))
    spec = _spec(d, "spec.yaml")
    for name in ("missing", "bad", "wrong_shape", "nan", "range"):
        _spec(d, f"{name}.yaml", f"{name}.npz")
    _spec(d, "csv.yaml", text=SPEC.replace("source: npz, path: DATA", "source: csv, path: bad.csv"))
    _spec(d, "nodata.yaml", text=SPEC.split("data:")[0])
    _spec(
        d,
        "other_modules.yaml",
        text=SPEC.replace("fc1", "hidden").replace("out_features: 8", "out_features: 9"),
    )
    assert main(["run", str(spec), "--out", str(d / "good"), *QUIET]) == 0
    return SimpleNamespace(dir=d, spec=spec, good=d / "good")


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_message(err: str) -> str:
    """The one message of a failed command (its detail lines indented under it)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("(see `netc")]
    assert lines and all(ln.startswith("  ") for ln in lines[1:]), err
    return "\n".join(lines)


# -- Ctrl-C and --resume ----------------------------------------------------------------------------
def test_ctrl_c_prints_the_resume_command_exits_130_and_the_command_resumes(ws, tmp_path, capsys, step_hook):
    step_hook.append(lambda t: t.step == 3 and os.kill(os.getpid(), signal.SIGINT))
    d = tmp_path / "cut"
    assert main(["run", str(ws.spec), "--out", str(d), "--no-plots"]) == 130
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "interrupted at epoch 1, step 3 (checkpoint step-00000003.json)" in err
    line = err.strip().splitlines()[-1]
    assert line == f"resume with: netc run {ws.spec} --resume {d}"
    assert not (d / "weights.safetensors").exists()

    step_hook.clear()
    assert main([*line.removeprefix("resume with: netc ").split(), *QUIET]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("done: 2 epochs, 8 steps") and err.startswith("resuming ")
    assert (d / "weights.safetensors").read_bytes() == (ws.good / "weights.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("flag", "was"), [("--epochs 1", "epochs 2"), ("--lr 0.5", "lr 0.01"), ("--batch-size 4", "batch_size 8")]
)
def test_resume_keeps_the_configuration_a_contradicting_flag_is_refused(flag, was, ws, tmp_path, capsys):
    d = tmp_path / "good"
    shutil.copytree(ws.good, d)
    before = _files(d)
    assert main(["run", str(ws.spec), "--resume", str(d), *flag.split(), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert msg.startswith(f"netc: {flag}: the run in") and f"was started with {was}" in msg
    assert _files(d) == before


# -- divergence and --overfit-batch ----------------------------------------------------------------
def test_divergence_is_one_message_suggesting_a_lower_lr_and_exit_1(ws, tmp_path, capsys):
    text = SPEC.replace(
        "batch_size: 8", "batch_size: 8\n  schedule: {type: multistep, milestones: [1], gamma: 1.0e+30}"
    )
    spec = _spec(tmp_path, "diverge.yaml", str(ws.dir / "data.npz"), text)
    d = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(d), "--epochs", "3", *SILENT]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    msg = _one_message(err)
    assert msg.startswith("netc run: the loss became nan at epoch 2")
    assert "try a lower learning rate (--lr)" in msg and "The last good checkpoint is kept." in msg
    assert not (d / "weights.safetensors").exists()
    assert (d / "checkpoints" / "epoch-0001.json").exists()
    # the kept checkpoint is usable: eval loads it
    assert main(["eval", str(spec), "--checkpoint", str(d), "-o", str(tmp_path / "cm.png")]) == 0


def test_overfit_batch_reaches_a_tiny_loss_and_exits_0(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(ws.spec), "--overfit-batch", "--lr", "0.05", "--quiet"]) == 0
    out = capsys.readouterr().out
    m = re.fullmatch(r"overfit one batch of 8: loss (\S+) -> (\S+) in (\d+) steps\n", out)
    assert m, out
    assert float(m[2]) < 1e-3 < float(m[1]) and int(m[3]) <= 1000
    assert not (tmp_path / "runs").exists()  # a sanity check writes no run directory


# -- bad input: one message, exit 1, no traceback ------------------------------------------------------
# name -> (arguments, with {dir}, {spec}, {good}, {out} filled in; words the message must hold)
BAD = {
    "missing_data_file": (["run", "{dir}/missing.yaml"], ["missing.npz: file not found", "data.path"]),
    "malformed_npz": (["run", "{dir}/bad.yaml"], ["bad.npz: malformed .npz file"]),
    "csv_not_a_number": (["run", "{dir}/csv.yaml"], ["bad.csv:2:5: expected a number (field 2"]),
    "wrong_shape": (["run", "{dir}/wrong_shape.yaml"], ["input 'x' expects per-sample shape [2]", "[3]"]),
    "nan_in_data": (["run", "{dir}/nan.yaml"], ["nan.npz array 'x'", "NaN at sample 5"]),
    "label_out_of_range": (["run", "{dir}/range.yaml"], ["range.npz array 'label'", "outside [0, 3)"]),
    "epochs_zero": (["run", "{spec}", "--epochs", "0"], ["--epochs: expected a positive integer, got 0"]),
    "lr_negative": (["run", "{spec}", "--lr", "-1"], ["--lr: expected a positive number, got -1"]),
    "lr_word": (["run", "{spec}", "--lr", "abc"], ["--lr: expected a positive number, got 'abc'"]),
    "unknown_flag": (["run", "{spec}", "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
    "resume_not_a_run": (["run", "{spec}", "--resume", "{dir}"], ["config.json", "netc run directory"]),
    "resume_missing": (["run", "{spec}", "--resume", "{dir}/nowhere"], ["nowhere: no such run directory"]),
    "resume_other_modules": (
        ["run", "{dir}/other_modules.yaml", "--resume", "{good}"],
        [
            "does not fit this spec",
            "modules only in the checkpoint: fc1",
            "modules only in this spec: hidden",
        ],
    ),
    "out_is_a_run": (["run", "{spec}", "--out", "{good}"], ["already holds a run", "--resume"]),
    "device_cuda": (
        ["run", "{spec}", "--device", "cuda"],
        ["--device cuda", "no usable CUDA GPU", "--device cpu"],
    ),
    "no_data_section": (["run", "{dir}/nodata.yaml"], ["nodata.yaml: the spec has no data section"]),
    "eval_missing_checkpoint": (
        ["eval", "{spec}", "--checkpoint", "{dir}/nowhere"],
        ["nowhere does not exist"],
    ),
    "predict_missing_checkpoint": (
        ["predict", "{spec}", "--checkpoint", "{dir}/nowhere", "--input", "{dir}/inputs.npz"],
        ["nowhere does not exist"],
    ),
    "predict_wrong_shape": (
        ["predict", "{spec}", "--checkpoint", "{good}", "--input", "{dir}/predict_wrong.npz"],
        ["input 'x' expects per-sample shape [2]", "predict_wrong.npz", "[7]"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_message_and_exit_1(case, ws, tmp_path, capsys):
    args, words = BAD[case]
    good = tmp_path / "good"  # a copy: nothing may change in it
    shutil.copytree(ws.good, good)
    before = _files(good)
    out = tmp_path / "new-run"
    fill = {"dir": str(ws.dir), "spec": str(ws.spec), "good": str(good)}
    argv = [a.format(**fill) for a in args]
    if argv[0] == "run" and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(out)]
    assert main([*argv, *QUIET] if argv[0] == "run" else argv) == 1
    captured = capsys.readouterr()
    msg = _one_message(captured.err)
    assert msg.startswith("netc"), msg
    for w in words:
        assert w in msg, (w, msg)
    assert captured.out == ""
    assert _files(good) == before
    assert not out.exists()  # nothing half-made


def test_resume_with_a_corrupt_checkpoint_is_refused_naming_the_file(ws, tmp_path, capsys):
    d = tmp_path / "good"
    shutil.copytree(ws.good, d)
    (tensors,) = (d / "checkpoints").glob("epoch-0002.*.safetensors")
    data = bytearray(tensors.read_bytes())
    data[-6] ^= 0xFF
    tensors.write_bytes(bytes(data))
    before = _files(d)
    assert main(["run", str(ws.spec), "--resume", str(d), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert (
        msg.startswith(f"netc: {tensors}: checksum mismatch: the file is corrupt")
        and "epoch-0002.json" in msg
    )
    assert _files(d) == before


# -- what eval, predict and lr-find write --------------------------------------------------------------
def _records(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]


def test_eval_prints_the_metrics_and_writes_a_confusion_png(ws, tmp_path, capsys):
    png = tmp_path / "cm.png"
    assert main(["eval", str(ws.spec), "--checkpoint", str(ws.good), "-o", str(png)]) == 0
    out = capsys.readouterr().out
    last = _records(ws.good)[-1]
    assert "on val (8 samples):" in out
    assert f"  loss         {last['val_loss']:.4f}\n" in out
    assert f"  accuracy     {last['val_accuracy']:.4f}\n" in out
    rows = out.split("columns: predicted):\n")[1].splitlines()[1:4]
    counts = np.array([[int(c) for c in row.split()[1:]] for row in rows])
    assert counts.shape == (3, 3) and counts.sum() == 8
    assert np.trace(counts) == round(last["val_accuracy"] * 8)
    assert f"wrote {png}" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_writes_npz_and_csv_with_the_right_shapes(ws, tmp_path, capsys):
    npz, csv = tmp_path / "p.npz", tmp_path / "p.csv"
    inputs = str(ws.dir / "inputs.npz")
    assert (
        main(["predict", str(ws.spec), "--checkpoint", str(ws.good), "--input", inputs, "-o", str(npz)]) == 0
    )
    assert capsys.readouterr().out == f"wrote {npz}: logits [11, 3], logits_class [11]\n"
    with np.load(npz) as f:
        logits, cls = f["logits"], f["logits_class"]
    assert logits.shape == (11, 3) and cls.shape == (11,)
    np.testing.assert_array_equal(cls, logits.argmax(axis=1))
    assert (
        main(["predict", str(ws.spec), "--checkpoint", str(ws.good), "--input", inputs, "-o", str(csv)]) == 0
    )
    lines = csv.read_text().splitlines()
    assert lines[0] == "logits[0],logits[1],logits[2],logits_class"
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert table.shape == (11, 4)
    np.testing.assert_allclose(table[:, :3], logits, rtol=1e-6)
    np.testing.assert_array_equal(table[:, 3], cls)


def test_lr_find_writes_a_png_and_suggests_a_learning_rate(ws, tmp_path, capsys):
    png = tmp_path / "lr.png"
    assert main(["lr-find", str(ws.spec), "--steps", "40", "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("LR range test: ") and f"wrote {png}" in out
    m = re.search(r"suggested learning rate: (\S+) ", out)
    assert m, out
    assert 1e-7 <= float(m[1]) <= 10
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_measures_the_runs_own_split_when_it_was_trained_with_another_seed(ws, tmp_path, capsys):
    # --seed changes the train/val split; eval must use the run's split, not the spec's seed's
    out = tmp_path / "seeded"
    assert main(["run", str(ws.spec), "--seed", "7", "--out", str(out), *QUIET]) == 0
    capsys.readouterr()
    assert main(["eval", str(ws.spec), "--checkpoint", str(out), "-o", str(tmp_path / "cm.png")]) == 0
    text = capsys.readouterr().out
    last = _records(out)[-1]
    assert f"  loss         {last['val_loss']:.4f}\n" in text
    assert f"  accuracy     {last['val_accuracy']:.4f}\n" in text


# -- run directories: damaged files, integrity, --out, how runs end, extending, --init-from, a full disk --
def _rewrite_record(path: Path, change: Any) -> None:
    """Edit a checkpoint record consistently (its checksum recomputed): what the schema must catch."""
    obj = json.loads(path.read_text())
    obj.pop("checksum")
    change(obj)
    records._write_json(path, obj)


def _untimed(d: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in _records(d)]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _config(d: Path, **train: Any) -> str:
    obj = json.loads((d / "config.json").read_text())
    return json.dumps({**obj, "train": {**obj["train"], **train}})


def _other_best(d: Path) -> None:
    w = {"hidden.w": np.zeros((8, 2), np.float32), "hidden.b": np.zeros(8, np.float32)}
    ck.write_safetensors(d / "checkpoints" / "best.safetensors", w)


def _replace_by_dir(p: Path) -> None:
    p.unlink()
    p.mkdir()


META = "checkpoints/epoch-0002.json"
# name -> (damage done to a copy of the finished run, the file the message names, words it holds)
DAMAGE = {
    "meta_empty": (lambda d: _rewrite_record(d / META, lambda r: r.update(meta={})), META, ["meta: 'epoch'"]),
    "epoch_string": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(epoch="3")),
        META,
        ["meta.epoch: '3' is not of type 'integer'"],
    ),
    "epoch_negative": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(epoch=-5)),
        META,
        ["meta.epoch: -5 is less than the minimum of 0"],
    ),
    "epoch_huge": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(epoch=10**30)),
        META,
        ["meta.epoch: 1000000000000000000000000000000 is greater than the maximum of 2", "run has 2 epochs"],
    ),
    "cursor_huge": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(cursor=10**6)),
        META,
        ["meta.cursor: 1000000 is greater than the maximum of 3", "an epoch has 4 batches"],
    ),
    "optimizer_empty": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(optimizer={})),
        META,
        ["meta.optimizer: 'type' is a required property"],
    ),
    "schedule_null": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(schedule=None)),
        META,
        ["meta.schedule: None is not of type 'object'"],
    ),
    "step_inconsistent": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"].update(step=5)),
        META,
        ["meta.step is 5, but epoch 2 and cursor 0", "make it 8"],
    ),
    "meter_other_losses": (
        lambda d: _rewrite_record(d / META, lambda r: r["meta"]["meter"].update(loss={"mse": 1.0})),
        META,
        ["meta.meter.loss: 'mse' is not one of ['ce']"],
    ),
    "record_edited": (
        lambda d: (d / META).write_text((d / META).read_text().replace('"step": 8', '"step": 9')),
        META,
        ["checksum mismatch: the file is corrupt"],
    ),
    "config_empty": (lambda d: (d / "config.json").write_text("{}"), "config.json", ["'spec' is a required"]),
    "config_list": (
        lambda d: (d / "config.json").write_text("[]"),
        "config.json",
        ["[] is not of type 'object'"],
    ),
    "config_epochs_string": (
        lambda d: (d / "config.json").write_text(_config(d, epochs="2")),
        "config.json",
        ["train.epochs: '2' is not of type 'integer'"],
    ),
    "config_a_directory": (lambda d: _replace_by_dir(d / "config.json"), "config.json", ["is a directory"]),
    "metrics_binary": (
        lambda d: (d / "metrics.jsonl").write_bytes(bytes(range(256))),
        "metrics.jsonl",
        ["not UTF-8 text"],
    ),
    "metrics_without_epoch": (
        lambda d: (d / "metrics.jsonl").write_text('{"step": 4}\n{"epoch": 2, "step": 8}\n'),
        "metrics.jsonl",
        ["line 1: 'epoch' is a required property"],
    ),
    "metrics_a_directory": (
        lambda d: _replace_by_dir(d / "metrics.jsonl"),
        "metrics.jsonl",
        ["is a directory"],
    ),
    "metrics_cut": (
        lambda d: (d / "metrics.jsonl").write_text((d / "metrics.jsonl").read_text().splitlines()[0] + "\n"),
        "metrics.jsonl",
        ["has 1 epoch record(s), but checkpoint epoch-0002.json is at the end of epoch 2"],
    ),
    "best_from_another_spec": (
        _other_best,
        "checkpoints/best.safetensors",
        [
            "belongs to another network",
            "modules only in the checkpoint: hidden",
            "modules only in this spec: fc1",
        ],
    ),
    "best_a_directory": (
        lambda d: _replace_by_dir(d / "checkpoints" / "best.safetensors"),
        "checkpoints/best.safetensors",
        ["is a directory, not a safetensors file"],
    ),
    "best_missing": (
        lambda d: (d / "checkpoints" / "best.safetensors").unlink(),
        "checkpoints/best.safetensors",
        ["is missing, but the checkpoint says epoch"],
    ),
}
EARLY_SPEC = SPEC.replace("seed: 1", "seed: 1\n  early_stopping: {monitor: val_loss, patience: 5}")


@pytest.fixture(scope="module")
def early(ws: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A finished run of the spec with early stopping (so it keeps best.safetensors)."""
    d = tmp_path_factory.mktemp("early")
    spec = _spec(d, "early.yaml", str(ws.dir / "data.npz"), EARLY_SPEC)
    assert main(["run", str(spec), "--out", str(d / "run"), *QUIET]) == 0
    return SimpleNamespace(spec=spec, run=d / "run")


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_run_file_is_one_message_naming_the_file_and_key(case, early, tmp_path, capsys):
    damage, name, words = DAMAGE[case]
    d = tmp_path / "run"
    shutil.copytree(early.run, d)
    damage(d)
    before = _files(d)
    capsys.readouterr()
    assert main(["run", str(early.spec), "--resume", str(d), *SILENT]) == 1
    captured = capsys.readouterr()
    msg = _one_message(captured.err)
    assert msg.startswith("netc") and str(d / name) in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert captured.out == ""
    assert _files(d) == before


# file -> (offset of the flipped bit: in the tensor data, or a byte of the header's JSON)
FLIPS = {
    "weights.safetensors": [-5, 40],
    "checkpoints/best.safetensors": [-5, 40],
    "checkpoints/epoch-0002.*.safetensors": [-5, 40],
}


@pytest.mark.parametrize(("pattern", "offset"), [(p, o) for p, offs in FLIPS.items() for o in offs])
def test_one_flipped_bit_in_any_weights_file_is_refused(pattern, offset, early, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(early.run, d)
    (f,) = d.glob(pattern)
    _flip(f, offset)
    before = _files(d)
    capsys.readouterr()
    if pattern == "weights.safetensors":
        argv = ["eval", str(early.spec), "--checkpoint", str(d), "-o", str(tmp_path / "cm.png")]
    else:
        argv = ["run", str(early.spec), "--resume", str(d), *QUIET]
    assert main(argv) == 1
    captured = capsys.readouterr()
    msg = _one_message(captured.err)
    assert msg.startswith(f"netc: {f}") and (
        "checksum mismatch: the file is corrupt" in msg or "JSON" in msg
    ), msg
    assert captured.out == ""
    assert _files(d) == before
    assert not (tmp_path / "cm.png").exists()


def test_weights_without_a_checksum_are_used_with_a_warning(early, tmp_path, capsys):
    """A weights file of another tool (or of netc before checksums) cannot be verified: it is
    read, and the person is told so."""
    d = tmp_path / "run"
    shutil.copytree(early.run, d)
    w = d / "weights.safetensors"
    tensors, meta = ck.read_safetensors(w)
    ck.write_safetensors(w, tensors, meta, checksum=False)
    capsys.readouterr()
    assert main(["eval", str(early.spec), "--checkpoint", str(d), "-o", str(tmp_path / "cm.png")]) == 0
    err = capsys.readouterr().err
    assert f"netc: warning: {w} carries no checksum" in err and "Traceback" not in err


def test_out_refuses_a_folder_that_is_not_a_netc_run_and_touches_nothing(ws, tmp_path, capsys):
    d = tmp_path / "mine"
    (d / "plots").mkdir(parents=True)
    for name in ("config.json", "spec.yaml", "plan.json", "weights.safetensors", "plots/loss.png"):
        (d / name).write_text(f"the user's own {name}")
    before = _files(d)
    assert main(["run", str(ws.spec), "--out", str(d), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert msg.startswith(f"netc: --out {d}: the folder is not empty and is not a netc run")
    assert "choose another --out, or empty the folder" in msg
    assert _files(d) == before
    assert {p.name for p in d.iterdir()} == {
        "plots",
        "config.json",
        "spec.yaml",
        "plan.json",
        "weights.safetensors",
    }
    f = tmp_path / "a-file"
    f.write_text("x")
    assert main(["run", str(ws.spec), "--out", str(f), *SILENT]) == 1
    assert "a file of that name exists" in _one_message(capsys.readouterr().err)
    assert f.read_text() == "x"


def test_out_takes_an_empty_folder_and_marks_it_as_a_run(ws, tmp_path, capsys):
    d = tmp_path / "empty"
    d.mkdir()
    assert main(["run", str(ws.spec), "--out", str(d), *QUIET]) == 0
    assert json.loads((d / "netc-run.json").read_text())["kind"] == "netc-run"
    assert (d / "weights.safetensors").read_bytes() == (ws.good / "weights.safetensors").read_bytes()


def _dead(run: Path, d: Path) -> None:
    """A copy of ``run`` as if it had been killed before its first checkpoint."""
    shutil.copytree(run, d)
    shutil.rmtree(d / "checkpoints")
    (d / "checkpoints").mkdir()
    (d / "weights.safetensors").unlink()


@pytest.mark.parametrize("how", ["--resume", "--out"])
def test_a_run_killed_before_its_first_checkpoint_restarts_from_the_beginning(how, ws, tmp_path, capsys):
    d = tmp_path / "dead"
    _dead(ws.good, d)
    assert main(["run", str(ws.spec), how, str(d), "--no-plots"]) == 0
    err = capsys.readouterr().err
    if how == "--resume":
        assert "restarting tiny from the beginning (it saved no checkpoint)" in err
    assert (d / "weights.safetensors").read_bytes() == (ws.good / "weights.safetensors").read_bytes()
    assert _untimed(d) == _untimed(ws.good)


def test_resuming_a_finished_run_says_it_is_complete_and_trains_nothing(early, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(early.run, d)
    before = _files(d)
    assert main(["run", str(early.spec), "--resume", str(d), *QUIET]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"the run in {d} is complete: it finished its 2 epochs; nothing to resume")
    assert f"--resume {d} --epochs N (N > 2)" in out and f"--init-from {d}" in out
    assert _files(d) == before


def test_a_run_killed_before_its_final_weights_writes_them_on_resume(early, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(early.run, d)
    (d / "weights.safetensors").unlink()
    records = _records(d)
    assert main(["run", str(early.spec), "--resume", str(d), "--no-plots"]) == 0
    assert "ended at epoch 2; writing its final weights" in capsys.readouterr().err
    assert (d / "weights.safetensors").read_bytes() == (early.run / "weights.safetensors").read_bytes()
    assert _records(d) == records  # nothing trained


def test_epochs_extends_a_finished_run_as_if_it_had_been_longer(ws, tmp_path, capsys):
    """A constant learning rate: 2 epochs, then --epochs 4 on resume, is bitwise a 4-epoch run."""
    d = tmp_path / "run"
    shutil.copytree(ws.good, d)
    assert main(["run", str(ws.spec), "--resume", str(d), "--epochs", "4", *QUIET]) == 0
    assert capsys.readouterr().out.startswith("done: 4 epochs, 16 steps")
    assert main(["run", str(ws.spec), "--epochs", "4", "--out", str(tmp_path / "long"), *QUIET]) == 0
    assert (d / "weights.safetensors").read_bytes() == (
        tmp_path / "long" / "weights.safetensors"
    ).read_bytes()
    assert json.loads((d / "config.json").read_text())["train"]["epochs"] == 4  # a later resume knows
    capsys.readouterr()
    assert main(["run", str(ws.spec), "--resume", str(d), *QUIET]) == 0
    assert "it finished its 4 epochs" in capsys.readouterr().out
    # killed after the extension saved its new length, before its first checkpoint: resuming
    # goes on extending, it does not take the old finished checkpoint for the end
    cut = tmp_path / "cut"
    shutil.copytree(ws.good, cut)
    (cut / "config.json").write_text(_config(cut, epochs=4))
    assert main(["run", str(ws.spec), "--resume", str(cut), *QUIET]) == 0
    assert capsys.readouterr().out.startswith("done: 4 epochs, 16 steps")
    assert (cut / "weights.safetensors").read_bytes() == (d / "weights.safetensors").read_bytes()


def test_quiet_keeps_the_epoch_summaries_and_silent_prints_nothing(ws, tmp_path, capsys):
    assert main(["run", str(ws.spec), "--out", str(tmp_path / "q"), "--quiet", "--no-plots"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"^epoch 1/2  train_loss \S+  train_accuracy \S+  val_loss", err, re.M), err
    assert "epoch 2/2" in err and "training tiny" in err and "\r" not in err
    assert out.startswith("done: 2 epochs")
    assert main(["run", str(ws.spec), "--out", str(tmp_path / "s"), "--silent", "--no-plots"]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "s" / "weights.safetensors").exists()
    assert main(["run", str(ws.spec), "--quiet", "--silent"]) == 1
    assert "argument --silent: not allowed with argument --quiet" in capsys.readouterr().err


def test_the_config_train_section_pastes_back_into_the_spec(ws, tmp_path):
    """config.json holds only the chosen optimizer's and schedule's fields: pasted back as the
    spec's train section it validates and means the same; an old config.json that lists every
    optimizer's defaults still resumes."""
    import yaml

    from netc import load

    train = json.loads((ws.good / "config.json").read_text())["train"]
    assert set(train["optimizer"]) == {"type", "lr", "betas", "no_decay"}, train["optimizer"]
    doc = yaml.safe_load(ws.spec.read_text())
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text(yaml.safe_dump({**doc, "train": train}, sort_keys=False))  # as written
    assert load(pasted).train == train
    old = tmp_path / "old"
    shutil.copytree(ws.good, old)
    full = {"dampening": 0.0, "nesterov": False, "alpha": 0.99, "centered": False, "lr_decay": 0.0}
    (old / "config.json").write_text(_config(old, optimizer={**train["optimizer"], **full}, epochs=3))
    assert main(["run", str(ws.spec), "--resume", str(old), *QUIET]) == 0


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_every_example_train_section_is_a_fixed_point(name, tmp_path):
    import yaml

    from netc import load

    train = load(EXAMPLES / f"{name}.yaml").train
    (tmp_path / "blocks").symlink_to(EXAMPLES / "blocks")  # its includes resolve as before
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    pasted = tmp_path / f"{name}.yaml"
    pasted.write_text(yaml.safe_dump({**doc, "train": train}, sort_keys=False))  # as written
    assert load(pasted).train == train


def test_init_from_loads_what_matches_and_reports_the_rest(ws, tmp_path, capsys):
    text = SPEC.replace("logits: {op: linear, in: act, out_features: 3}", "logits: {op: linear, in: act, "
                        "out_features: 3}\n  extra: {op: linear, in: act, out_features: 2}")  # fmt: skip
    text = text.replace("out_features: 8", "out_features: 8, bias: false")
    spec = _spec(tmp_path, "other.yaml", str(ws.dir / "data.npz"), text)
    d = tmp_path / "tuned"
    assert main(["run", str(spec), "--init-from", str(ws.good), "--out", str(d), "--no-plots"]) == 0
    err = capsys.readouterr().err
    w = ws.good / "weights.safetensors"
    assert f"init from {w}: loaded 3 of 5 parameters (fc1.w, logits.w, logits.b)" in err
    assert "skipped, not in the file (initialized as the spec says): extra.w, extra.b" in err
    assert "unused, not in this spec: fc1.b" in err
    assert json.loads((d / "config.json").read_text())["init_from"] == str(ws.good)


def test_init_from_refuses_shape_mismatches_and_needs_one_match(ws, tmp_path, capsys):
    spec = _spec(
        tmp_path, "wide.yaml", str(ws.dir / "data.npz"), SPEC.replace("out_features: 8", "out_features: 9")
    )
    d = tmp_path / "new"
    assert main(["run", str(spec), "--init-from", str(ws.good), "--out", str(d), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "loaded 1 of 4 parameters (logits.b)" in err
    assert (
        "refused, shape mismatch (initialized as the spec says): fc1.w [8, 2] in the file, [9, 2] in the spec"
        in err
    )
    other = _spec(
        tmp_path,
        "other.yaml",
        str(ws.dir / "data.npz"),
        SPEC.replace("fc1", "hidden").replace("logits", "out"),
    )
    assert main(["run", str(other), "--init-from", str(ws.good), "--out", str(tmp_path / "x"), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert "none of its 4 parameters fits this spec" in msg and "weights.safetensors" in msg
    assert not (tmp_path / "x").exists()
    assert main(["run", str(ws.spec), "--init-from", str(ws.good), "--resume", str(ws.good), *SILENT]) == 1
    assert "--init-from starts a new run" in _one_message(capsys.readouterr().err)


@pytest.mark.parametrize(
    "fails", ["epoch-0002.safetensors", "epoch-0002.json", "latest.json", "weights.safetensors"]
)
def test_a_full_disk_is_one_message_and_the_run_resumes_bitwise_exact(
    fails, ws, tmp_path, capsys, monkeypatch
):
    real = atomic.write_temp

    def full_disk(final: Path, write: Any) -> Any:
        if final.name != fails:
            return real(final, write)

        def half(f: Any) -> None:  # some bytes land, then the disk is full
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return real(final, half)

    monkeypatch.setattr(atomic, "write_temp", full_disk)
    d = tmp_path / "run"
    assert main(["run", str(ws.spec), "--out", str(d), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    where = d / "checkpoints" / fails if fails != "weights.safetensors" else d / fails
    kept = "epoch-0002.json" if fails == "weights.safetensors" else "epoch-0001.json"
    assert msg.startswith(f"netc: no space left on device while writing {where}; ")
    assert f"the previous checkpoint {kept} is intact; free space and resume with: " in msg
    assert not list(d.rglob("*.tmp"))  # the torn temporary file is gone
    monkeypatch.undo()
    command = msg.split("resume with: netc ")[1].split()
    assert main([*command, *QUIET]) == 0
    assert (d / "weights.safetensors").read_bytes() == (ws.good / "weights.safetensors").read_bytes()
    assert _untimed(d) == _untimed(ws.good)


def test_an_extended_cosine_schedule_holds_its_final_learning_rate(ws, tmp_path, capsys):
    """Like a PyTorch scheduler restored from its state_dict, the schedule keeps the length it was
    planned over; past it, the learning rate stays at the schedule's last value (eta_min)."""
    text = SPEC.replace("batch_size: 8", "batch_size: 8\n  schedule: {type: cosine, eta_min: 0.001}")
    spec = _spec(tmp_path, "cosine.yaml", str(ws.dir / "data.npz"), text)
    d = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(d), *QUIET]) == 0
    first = _records(d)
    assert main(["run", str(spec), "--resume", str(d), "--epochs", "3", *QUIET]) == 0
    recs = _records(d)
    assert [r["lrs"] for r in recs[:2]] == [r["lrs"] for r in first]  # the first two epochs stay as they were
    assert first[0]["lrs"][0] == pytest.approx(0.01) and first[1]["lrs"][-1] > 0.001
    assert recs[2]["lrs"] == [0.001] * 4


def test_a_run_that_diverged_in_its_first_epoch_is_no_dead_end(ws, tmp_path, capsys):
    d = tmp_path / "run"
    assert main(["run", str(ws.spec), "--out", str(d), "--lr", "1e30", *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert "at epoch 1" in msg and "No checkpoint was written before it." in msg
    assert json.loads((d / "netc-run.json").read_text())["diverged"]["epoch"] == 1
    # --resume restarts it from the beginning with its saved configuration, saying it will diverge again
    assert main(["run", str(ws.spec), "--resume", str(d), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "note: this run diverged" in err and "restarting tiny from the beginning" in err
    # --out on it again, with a learning rate that works, starts it afresh
    assert main(["run", str(ws.spec), "--out", str(d), *QUIET]) == 0
    assert (d / "weights.safetensors").read_bytes() == (ws.good / "weights.safetensors").read_bytes()
    assert "diverged" not in json.loads((d / "netc-run.json").read_text())


def test_model_fit_accepts_init_from(ws, tmp_path, capsys):
    import netc

    m = netc.Model.from_spec(ws.spec)
    r = m.fit(init_from=ws.good, epochs=1, progress=True)
    assert r.status == "finished"
    assert "loaded 4 of 4 parameters" in capsys.readouterr().err


def test_a_run_that_diverged_after_a_checkpoint_points_to_a_new_run_from_its_weights(ws, tmp_path, capsys):
    text = SPEC.replace(
        "batch_size: 8", "batch_size: 8\n  schedule: {type: multistep, milestones: [1], gamma: 1.0e+30}"
    )
    spec = _spec(tmp_path, "diverge.yaml", str(ws.dir / "data.npz"), text)
    d = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(d), "--epochs", "3", *SILENT]) == 1
    capsys.readouterr()
    before = _files(d)
    assert main(["run", str(spec), "--out", str(d), *SILENT]) == 1
    msg = _one_message(capsys.readouterr().err)
    assert f"{d} holds a run that diverged" in msg and f"--init-from {d}" in msg
    assert _files(d) == before
    new = tmp_path / "new"
    assert main(["run", str(ws.spec), "--init-from", str(d), "--out", str(new), "--no-plots"]) == 0
    assert f"init from {d / 'checkpoints' / 'epoch-0001.json'}: loaded 4 of 4" in capsys.readouterr().err


DENOISE = """\
netc: 1
name: den
inputs:
  noisy: {shape: [1, 6, 6]}
  clean: {shape: [1, 6, 6]}
modules:
  c: {op: conv2d, in: noisy, out_channels: 2, kernel: 3, stride: 2, padding: 1}
  up: {op: conv_transpose2d, in: c, out_channels: 1, kernel: 2, stride: 2}
losses:
  mse: {op: mse, in: [up, clean]}
outputs: [up]
train: {optimizer: {type: adam, lr: 0.01}, batch_size: 8, epochs: 1}
data: {source: npz, path: img.npz, columns: {noisy: x, clean: x}, normalize: minmax, denoise: 0.3}
"""


def test_an_image_to_image_run_plots_inputs_outputs_and_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=(rng.random((20, 1, 6, 6)) * 255).astype(np.float32))
    spec = _spec(tmp_path, "den.yaml", text=DENOISE)
    assert main(["run", str(spec), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    png = tmp_path / "r" / "plots" / "images.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
