"""`netc eval`, `predict`, `run`, `compile` and the other commands against bad data files,
absurd sizes and closed pipes: one located message and exit 1 (no traceback, no file contents),
a refusal before anything is allocated, and a quiet end when the reader of stdout goes away;
plus eval's per-class report and predict's probabilities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tinyspec import classifier

from netc.cli import main
from netc.runtime import run as rr

QUIET = ["--quiet", "--no-plots"]
SPEC = classifier(
    "tiny",
    """
    optimizer: {type: adam, lr: 0.05}
    batch_size: 8
    epochs: 3
    seed: 1
    """,
    "{source: npz, path: data.npz, split: {val: 0.25}}",
)
# 2 -> 10^6 -> 10^6 -> 3: a 10^12-parameter hidden layer, about 14,900 GiB to train with adam
HUGE = (
    SPEC.replace(
        "  act: {op: relu, in: fc1}\n",
        "  act: {op: relu, in: fc1}\n  wide: {op: linear, in: act, out_features: 1000000}\n",
    )
    .replace("out_features: 8", "out_features: 1000000")
    .replace("in: act, out_features: 3", "in: wide, out_features: 3")
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("data-cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 2)).astype(np.float32)
    label = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    np.savez(d / "data.npz", x=x, label=label)
    (d / "spec.yaml").write_text(SPEC)
    (d / "huge.yaml").write_text(HUGE)
    assert main(["run", str(d / "spec.yaml"), "--out", str(d / "good"), *QUIET]) == 0
    return SimpleNamespace(dir=d, spec=str(d / "spec.yaml"), good=str(d / "good"), x=x, label=label)


def fails(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one line a failing command prints (exit 1, no traceback, nothing on stdout)."""
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == "", (out, err)
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def predict(ws: SimpleNamespace, path: Path, *more: str) -> list[str]:
    return ["predict", ws.spec, "--checkpoint", ws.good, "--input", str(path), *more]


def evaluate(ws: SimpleNamespace, path: Path, *more: str) -> list[str]:
    return ["eval", ws.spec, "--checkpoint", ws.good, "--data", str(path), "-o", str(path) + ".png", *more]


# -- predict needs no labels; eval checks them ---------------------------------------------------------
def test_predict_reads_only_the_inputs_the_outputs_need(ws, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=ws.x[:5], label=ws.label[:5] + 7)  # labels out of range: unused
    out = tmp_path / "p.npz"
    assert main([*predict(ws, tmp_path / "in.npz"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: logits [5, 3], logits_class [5]\n"


def test_predict_with_zero_rows_is_refused(ws, tmp_path, capsys):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 2), np.float32))
    msg = fails(predict(ws, tmp_path / "empty.npz"), capsys)
    assert msg == f"netc: {tmp_path / 'empty.npz'}: no samples (--input)"


def test_eval_data_with_labels_out_of_range_names_the_array_and_row(ws, tmp_path, capsys):
    label = ws.label.copy()
    label[4] = 5
    np.savez(tmp_path / "bad.npz", x=ws.x, label=label)
    msg = fails(evaluate(ws, tmp_path / "bad.npz"), capsys)
    assert (
        f"{tmp_path / 'bad.npz'} array 'label' (input 'label'): label 5 at sample 4 is outside [0, 3)" in msg
    )


def test_eval_data_without_labels_names_the_missing_input(ws, tmp_path, capsys):
    np.savez(tmp_path / "nolabel.npz", x=ws.x)
    msg = fails(evaluate(ws, tmp_path / "nolabel.npz"), capsys)
    assert "input 'label' cannot be fed" in msg and "nolabel.npz" in msg


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_damaged_input_files_are_one_message(ws, tmp_path, capsys, command):
    (tmp_path / "r.npz").write_bytes(np.random.default_rng(1).bytes(500))
    argv = predict(ws, tmp_path / "r.npz") if command == "predict" else evaluate(ws, tmp_path / "r.npz")
    assert "r.npz: malformed .npz file: not a zip archive" in fails(argv, capsys)
    (tmp_path / "big.npy").write_bytes(
        b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000, 2), }"
        + b" " * 4
        + b"\n"
    )
    argv = predict(ws, tmp_path / "big.npy") if command == "predict" else evaluate(ws, tmp_path / "big.npy")
    assert "big.npy: not a valid .npy array: the header declares [10000000000, 2] float32" in fails(
        argv, capsys
    )


@pytest.mark.parametrize("flag", ["--input", "--data"])
def test_a_file_that_is_not_data_is_never_echoed(ws, tmp_path, capsys, flag):
    secret = tmp_path / "passwd.csv"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice Secret:/home/alice:/bin/sh\n")
    argv = predict(ws, secret) if flag == "--input" else evaluate(ws, secret)
    msg = fails(argv, capsys)
    assert f"{secret}:2:1: expected a number" in msg
    assert "alice" not in msg and "Secret" not in msg and "/bin/" not in msg


def test_predict_says_how_an_input_was_matched(ws, tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.zeros((4, 5), np.float32))
    msg = fails(predict(ws, tmp_path / "wide.npy"), capsys)
    assert "an .npy file holds the first input" in msg and "matched by the input's name" not in msg
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 5), np.float32))
    assert "matched by the input's name" in fails(predict(ws, tmp_path / "wide.npz"), capsys)


# -- eval's per-class report, predict's probabilities --------------------------------------------------
def test_eval_prints_precision_recall_f1_like_scikit_learn(ws, tmp_path, capsys):
    from sklearn.metrics import precision_recall_fscore_support

    np.savez(tmp_path / "all.npz", x=ws.x, label=ws.label)
    assert main(evaluate(ws, tmp_path / "all.npz")) == 0
    out = capsys.readouterr().out
    cm_rows = out.split("columns: predicted):\n")[1].splitlines()[1:4]
    cm = np.array([[int(c) for c in row.split()[1:]] for row in cm_rows])
    report = out.split("precision")[1].splitlines()[1:]
    rows = {ln.rsplit(None, 4)[0].strip(): [float(v) for v in ln.rsplit(None, 4)[1:]] for ln in report[:5]}
    # the labels and predictions the confusion matrix counts, back from it
    y = np.repeat(np.repeat(np.arange(3), 3), cm.reshape(-1))
    p = np.repeat(np.tile(np.arange(3), 3), cm.reshape(-1))
    want = precision_recall_fscore_support(y, p, labels=[0, 1, 2], zero_division=0)
    for c in range(3):
        np.testing.assert_allclose(rows[str(c)][:3], [w[c] for w in want[:3]], atol=5e-5)
        assert rows[str(c)][3] == want[3][c]
    for avg, key in (("macro", "macro avg"), ("weighted", "weighted avg")):
        got = precision_recall_fscore_support(y, p, labels=[0, 1, 2], average=avg, zero_division=0)
        np.testing.assert_allclose(rows[key][:3], got[:3], atol=5e-5)


def test_predict_probabilities_are_the_softmax_of_the_logits(ws, tmp_path, capsys):
    np.savez(tmp_path / "in.npz", x=ws.x[:6])
    npz, csv = tmp_path / "p.npz", tmp_path / "p.csv"
    assert main([*predict(ws, tmp_path / "in.npz", "--probabilities"), "-o", str(npz)]) == 0
    assert "logits_prob [6, 3]" in capsys.readouterr().out
    with np.load(npz) as f:
        logits, prob = f["logits"].astype(np.float64), f["logits_prob"]
    want = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(prob, want, rtol=1e-5)
    assert main([*predict(ws, tmp_path / "in.npz", "--probabilities"), "-o", str(csv)]) == 0
    capsys.readouterr()
    head = csv.read_text().splitlines()[0]
    assert head.endswith("logits_class,logits_prob[0],logits_prob[1],logits_prob[2]")
    assert main(predict(ws, tmp_path / "in.npz", "--probabilities")) == 0
    first = capsys.readouterr().out.splitlines()[0]
    c = int(logits[0].argmax())
    assert first == f"0: logits -> {c} (p {prob[0, c]:.4f})"


# -- memory: warn at compile time, refuse before allocating --------------------------------------------
def test_compile_warns_when_the_training_peak_exceeds_this_machine(ws, capsys):
    assert main(["compile", str(ws.dir / "huge.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "training-step peak" in out
    (line,) = err.strip().splitlines()
    assert line.startswith("netc compile: warning: the training-step peak at batch 32 (14901.")
    assert "GiB of memory available on this machine" in line
    assert main(["compile", ws.spec]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "{huge}", "--out", "{tmp}/r", *QUIET],
        ["eval", "{huge}", "--checkpoint", "{good}"],
        ["predict", "{huge}", "--checkpoint", "{good}", "--input", "{dir}/data.npz"],
        ["lr-find", "{huge}", "-o", "{tmp}/lr.png"],
        ["gradcheck", "{huge}"],
        ["profile", "{huge}"],
    ],
    ids=lambda a: a[0],
)
def test_commands_refuse_a_plan_beyond_this_machines_memory(ws, tmp_path, capsys, argv):
    fill = {"huge": str(ws.dir / "huge.yaml"), "good": ws.good, "dir": str(ws.dir), "tmp": str(tmp_path)}
    msg = fails([a.format(**fill) for a in argv], capsys)
    peak = "inference peak" if argv[0] in ("eval", "predict") else "training-step peak"  # their plans
    assert msg.startswith(f"netc: the memory ledger's {peak} at batch ")
    assert "GiB available; reduce the batch size or the model's size" in msg
    assert list(tmp_path.iterdir()) == []


def test_the_refusal_uses_this_machines_available_memory(ws, tmp_path, capsys, monkeypatch):
    import netc.compiler.host as host

    monkeypatch.setattr(host, "available_memory", lambda: 1000)
    msg = fails(["run", ws.spec, "--out", str(tmp_path / "r"), *QUIET], capsys)
    assert "training-step peak at batch 8 is" in msg and "this machine has 1000 B available" in msg


def test_a_batch_larger_than_the_training_split_is_refused_before_allocating(
    ws, tmp_path, capsys, monkeypatch
):
    def no_executor(*a, **k):
        raise AssertionError("the executor was built")

    monkeypatch.setattr(rr, "make_executor", no_executor)
    msg = fails(["run", ws.spec, "--batch-size", "100000000", "--out", str(tmp_path / "r"), *QUIET], capsys)
    assert msg == (
        "netc: train.batch_size 100000000 is larger than the training split (36 samples); lower --batch-size"
    )
    assert not (tmp_path / "r").exists()


# -- BatchNorm at batch 1 --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, op, batch, refused",
    [("[4]", "batchnorm1d", 1, True), ("[4]", "batchnorm1d", 2, False), ("[4, 1, 1]", "batchnorm2d", 1, True),
     ("[4, 3, 3]", "batchnorm2d", 1, False)],
)  # fmt: skip
def test_batchnorm_with_one_value_per_channel_in_training_is_refused(
    tmp_path, capsys, shape, op, batch, refused
):
    spec = tmp_path / "bn.yaml"
    spec.write_text(
        f"""netc: 1
name: bn
inputs:
  x: {{shape: {shape}}}
  y: {{shape: [], dtype: int64}}
modules:
  norm: {{op: {op}, in: x}}
  flat: {{op: flatten, in: norm}}
  fc: {{op: linear, in: flat, out_features: 2}}
losses:
  ce: {{op: cross_entropy, in: [fc, y]}}
outputs: [fc]
train: {{optimizer: {{type: sgd, lr: 0.1}}, batch_size: {batch}, epochs: 1}}
data: {{source: npz, path: d.npz}}
"""
    )
    n = 6
    dims = [int(v) for v in shape.strip("[]").split(",")]
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(n, *dims)), y=np.arange(n) % 2)
    argv = ["run", str(spec), "--out", str(tmp_path / "r"), *QUIET]
    if refused:
        msg = fails(argv, capsys)
        assert msg.startswith(
            f"netc: module 'norm' ({op}): a training batch of 1 gives it 1 value per channel"
        )
        assert "Expected more than 1 value per channel when training" in msg
    else:
        assert main(argv) == 0


# -- closed pipes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["compile", "eval"])
def test_a_closed_pipe_ends_quietly(ws, tmp_path, command):
    argv = (
        ["compile", str(Path(__file__).parents[2] / "examples" / "lenet5.yaml"), "--json"]
        if command == "compile"
        else ["eval", ws.spec, "--checkpoint", ws.good, "-o", str(tmp_path / "cm.png")]
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "netc.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()  # the reader is gone before netc writes a byte, as `| head -0` would be
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_per_class_scores_match_scikit_learn_where_a_class_is_never_predicted_or_present():
    from sklearn.metrics import precision_recall_fscore_support

    from netc.runtime.plots import confusion_matrix

    y = np.array([0, 0, 1, 1, 1, 3, 3])
    p = np.array([0, 1, 1, 1, 0, 1, 0])  # class 2 never present, class 3 never predicted
    got = rr.per_class_scores(confusion_matrix(y, p, 4))
    want = precision_recall_fscore_support(y, p, labels=[0, 1, 2, 3], zero_division=0)
    np.testing.assert_allclose(got, np.stack(want, axis=1))


def test_run_refuses_a_plan_beyond_memory_before_reading_its_data(ws, tmp_path, capsys, monkeypatch):
    # Reading or generating the data can cost as much as the network (a synthetic source sized by
    # a million-class head allocated 7 TiB before any check): the ledger is checked first.
    def no_data(*a, **k):
        raise AssertionError("the data was read")

    monkeypatch.setattr(rr, "datasets", no_data)
    msg = fails(["run", str(ws.dir / "huge.yaml"), "--out", str(tmp_path / "r"), *QUIET], capsys)
    assert msg.startswith("netc: the memory ledger's training-step peak at batch ")
    assert list(tmp_path.iterdir()) == []
