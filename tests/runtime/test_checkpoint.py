"""Checkpoints: the safetensors codec against the reference package, refusal of every
kind of damage, crash safety under a real SIGKILL, and plan compatibility messages."""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy as stnp

import netc
from netc.runtime.checkpoint import (
    Checkpoint,
    CheckpointError,
    check_compatible,
    load_checkpoint,
    plan_signature,
    read_safetensors,
    restore_training_tensors,
    save_checkpoint,
    spec_hash,
    training_tensors,
    write_safetensors,
)
from netc.runtime.store import records
from netc.runtime.store import safetensors as st


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv1.w": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
        "fc.b": rng.standard_normal(7),  # float64
        "steps": np.array(2**40 + 3, np.int64),  # 0-d
        "labels": rng.integers(-(2**62), 2**62, (3, 4), dtype=np.int64),
        "mask": rng.integers(0, 256, (5,), dtype=np.uint8),
        "empty_f": np.zeros((0,), np.float32),
        "empty_i": np.zeros((3, 0, 2), np.int64),
        "scalar_u8": np.array(255, np.uint8),
    }


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
        assert got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)


# -- the safetensors codec -----------------------------------------------------------------


@pytest.mark.parametrize("metadata", [None, {}, {"note": 'é "quoted"'}])
def test_writer_matches_the_reference_byte_for_byte(metadata):
    buf = io.BytesIO()
    st.write_stream(buf, _tensors(), metadata)
    assert buf.getvalue() == stnp.save(_tensors(), metadata=metadata)
    n = int.from_bytes(buf.getvalue()[:8], "little")
    assert n % 8 == 0


def test_round_trip_both_ways_against_the_reference(tmp_path):
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    write_safetensors(ours, _tensors(), {"k": "v"})
    _assert_same(stnp.load_file(ours), _tensors())
    with safetensors.safe_open(ours, "np") as f:  # the checksum is ordinary metadata to other tools
        assert f.metadata().keys() == {"k", "netc_sha256"} and f.metadata()["k"] == "v"
    assert read_safetensors(ours)[1] == {"k": "v"}

    stnp.save_file(_tensors(), theirs, metadata={"a": "1"})
    got, meta = read_safetensors(theirs)
    _assert_same(got, _tensors())
    assert meta == {"a": "1"}
    got["conv1.w"][0, 0, 0, 0] = 42.0  # the reader's arrays are writable
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left no temporary file


def test_non_contiguous_and_big_endian_arrays_are_written_in_c_order(tmp_path):
    t = {"t": np.arange(12.0).reshape(3, 4).T, "be": np.arange(5, dtype=">i8")}
    write_safetensors(tmp_path / "x.safetensors", t)
    got, _ = read_safetensors(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(got["t"], t["t"])
    np.testing.assert_array_equal(got["be"], t["be"])
    assert got["be"].dtype == np.dtype("int64")
    np.testing.assert_array_equal(stnp.load_file(tmp_path / "x.safetensors")["t"], t["t"])


def test_writer_refuses_what_it_cannot_encode(tmp_path):
    with pytest.raises(TypeError, match="'s'"):
        write_safetensors(tmp_path / "x", {"s": np.array(["a"])})
    with pytest.raises(ValueError, match="__metadata__"):
        write_safetensors(tmp_path / "x", {"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="str to str"):
        write_safetensors(tmp_path / "x", {}, {"n": 1})  # type: ignore[dict-item]
    assert not list(tmp_path.iterdir())


def _raw(header: dict | bytes, data: bytes) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + data


def _f32(shape, begin, end):
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


_ONE = b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
_DUP = b"{" + _ONE + b"," + _ONE + b"}"
MALFORMED = {
    "too_short": (b"\x01\x02\x03", "too short"),
    "header_beyond_file": ((10**6).to_bytes(8, "little") + b"{}      ", "goes beyond the end"),
    "bad_json": (_raw(b"{nope}", b""), "bad JSON"),
    "not_utf8": (_raw(b'{"\xff":1}', b""), "bad JSON"),
    "unknown_dtype": (
        _raw({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        "unknown dtype",
    ),
    "bad_shape": (_raw({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "shape"),
    "offsets_out_of_range": (_raw({"a": _f32([3], 0, 12)}, b"\0" * 8), "out of range"),
    "offsets_reversed": (_raw({"a": _f32([0], 8, 4)}, b"\0" * 8), "out of range"),
    "overlapping": (_raw({"a": _f32([2], 0, 8), "b": _f32([2], 4, 12)}, b"\0" * 12), "overlaps"),
    "gap": (_raw({"a": _f32([1], 0, 4), "b": _f32([1], 8, 12)}, b"\0" * 12), "belong to no tensor"),
    "size_not_shape": (_raw({"a": _f32([3], 0, 8)}, b"\0" * 8), "needs 3 x 4 = 12"),
    "trailing_garbage": (_raw({"a": _f32([1], 0, 4)}, b"\0" * 9), "trailing garbage: 5 bytes"),
    "bad_metadata": (_raw({"__metadata__": {"k": 1}}, b""), "__metadata__"),
    "duplicate_name": (_raw(_DUP, b"\0" * 4), "duplicate key"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_reader_refuses_malformed_files_naming_file_and_reason(tmp_path, case):
    raw, reason = MALFORMED[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as e:
        read_safetensors(path)
    assert str(path) in str(e.value)
    assert reason in str(e.value)
    if case not in ("duplicate_name", "bad_metadata"):  # the reference lets these two pass
        with pytest.raises(Exception):  # noqa: B017 - the oracle's own error type
            stnp.load(raw)


def test_reader_refuses_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"cannot read .*nope"):
        read_safetensors(tmp_path / "nope")


# -- checkpoints ------------------------------------------------------------------------------


def _meta() -> dict:
    rng = np.random.default_rng(12345)
    rng.random(3)
    return {
        "netc_version": netc.__version__,
        "spec_hash": spec_hash("netc: 1\n"),
        "epoch": 3,
        "step": 1200,
        "rng": rng.bit_generator.state,  # 128-bit integers
        "floats": [0.1, 1 / 3, 1e-310, -0.0, math.pi, float("inf"), 2.0**-1074],
        "best": {"metric": "val_loss", "value": 0.123456789012345678},
        "np": np.float32(0.1),
        "cursor": np.int64(7),
    }


def test_checkpoint_round_trip_and_every_way_to_name_it(tmp_path):
    run = tmp_path / "run"
    rec = save_checkpoint(run / "checkpoints", "epoch-0003", _tensors(), _meta())
    assert rec == run / "checkpoints" / "epoch-0003.json"
    (tfile,) = (run / "checkpoints").glob("*.safetensors")
    for where in (run, run / "checkpoints", rec, tfile, run / "checkpoints" / "latest.json"):
        c = load_checkpoint(where)
        assert c.path == rec and c.tag == "epoch-0003"
        _assert_same(c.tensors, _tensors())
    meta = c.meta
    # ints of any size and floats come back exactly; numpy scalars as Python numbers
    assert meta["rng"] == _meta()["rng"]
    assert meta["floats"][:5] == [0.1, 1 / 3, 1e-310, -0.0, math.pi]
    assert math.copysign(1.0, meta["floats"][3]) == -1.0
    assert meta["floats"][5] == math.inf and meta["floats"][6] == 2.0**-1074
    assert meta["best"]["value"] == 0.123456789012345678
    assert meta["np"] == float(np.float32(0.1)) and type(meta["cursor"]) is int
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    ref = np.random.default_rng(12345)
    ref.random(3)
    assert rng.random() == ref.random()  # the resumed stream continues exactly
    record = json.loads(rec.read_text())
    assert record["format"] == 1 and record["tensors"]["sha256"] == c.sha256
    assert record["tensors"]["bytes"] == tfile.stat().st_size
    assert tfile.name == f"epoch-0003.{c.sha256[:16]}.safetensors"


def test_meta_must_be_plain_json(tmp_path):
    with pytest.raises(TypeError, match=r"meta\['opt'\]: key 3"):
        save_checkpoint(tmp_path, "a", {}, {"opt": {3: "x"}})
    with pytest.raises(TypeError, match=r"meta\['w'\]: ndarray"):
        save_checkpoint(tmp_path, "a", {}, {"w": np.zeros(2)})
    with pytest.raises(ValueError, match="tag"):
        save_checkpoint(tmp_path, "latest", {}, {})
    with pytest.raises(ValueError, match="tag"):
        save_checkpoint(tmp_path, "a.b", {}, {})
    assert not list(tmp_path.iterdir())


def test_bit_flip_is_refused_by_sha256(tmp_path):
    save_checkpoint(tmp_path, "a", _tensors(), {})
    (tfile,) = tmp_path.glob("*.safetensors")
    raw = bytearray(tfile.read_bytes())
    raw[-3] ^= 0x10  # inside the uint8 mask: still a well-formed safetensors file
    tfile.write_bytes(raw)
    msg = rf"{re.escape(str(tfile))}: checksum mismatch: the file is corrupt"
    with pytest.raises(CheckpointError, match=msg):  # its own header's checksum
        read_safetensors(tfile)
    with pytest.raises(CheckpointError, match=msg + r" \(sha256 .* recorded in a.json"):  # the record's
        load_checkpoint(tmp_path)


def test_records_carry_a_checksum_an_edit_is_refused_an_old_record_warns(tmp_path, capsys):
    rec = save_checkpoint(tmp_path, "a", _tensors(), {"epoch": 3})
    obj = json.loads(rec.read_text())
    assert obj["checksum"] == records._json_digest(obj)
    for name in ("a.json", "latest.json"):
        path = tmp_path / name
        good = path.read_text()
        path.write_text(good.replace('"seq": 1', '"seq": 2'))
        with pytest.raises(
            CheckpointError, match=rf"{re.escape(str(path))}: checksum mismatch: the file is corrupt"
        ):
            load_checkpoint(tmp_path)
        path.write_text(good)
    # a record of a netc before checksums: used, with a warning naming it
    rec.write_text(json.dumps({k: v for k, v in obj.items() if k != "checksum"}))
    assert load_checkpoint(tmp_path).meta == {"epoch": 3}
    assert f"netc: warning: checkpoint record {rec} carries no checksum" in capsys.readouterr().err


def test_weights_files_carry_a_checksum_of_header_and_data(tmp_path):
    path = tmp_path / "w.safetensors"
    write_safetensors(path, {"a": np.arange(4, dtype=np.float32)})
    raw = path.read_bytes()
    # the header names dtype F32; as I32 the same bytes would be other numbers: refused too
    path.write_bytes(raw.replace(b'"F32"', b'"I32"'))
    with pytest.raises(CheckpointError, match="checksum mismatch: the file is corrupt"):
        read_safetensors(path)
    write_safetensors(path, {"a": np.arange(4, dtype=np.float32)}, checksum=False)
    read_safetensors(path)  # another tool's file: read
    with pytest.raises(CheckpointError, match="carries no checksum"):
        read_safetensors(path, unverified="refuse")


def test_truncated_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, "a", _tensors(), {})
    (tfile,) = tmp_path.glob("*.safetensors")
    tfile.write_bytes(tfile.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(tfile))} is \d+ bytes.*truncated"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(tfile))}.*out of range"):
        read_safetensors(tfile)


def test_unknown_format_is_refused(tmp_path):
    rec = save_checkpoint(tmp_path, "a", {}, {})
    obj = json.loads(rec.read_text())
    records._write_json(rec, {**obj, "format": 2})  # a consistent record of a newer netc
    with pytest.raises(
        CheckpointError, match=rf"{re.escape(str(rec))} has checkpoint format 2; this netc reads format 1"
    ):
        load_checkpoint(tmp_path)
    rec.write_text("{broken")
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(rec))} is not valid JSON"):
        load_checkpoint(rec)
    (tmp_path / "x.json").write_text('{"format": 1}')
    with pytest.raises(CheckpointError, match="not a netc checkpoint"):
        load_checkpoint(tmp_path / "x.json")


def test_no_checkpoint_anywhere(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints in"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.json")


def _fail_on(monkeypatch, name: str) -> None:
    """Make writing the JSON file ``name`` die the way a SIGKILL would: before it lands."""
    real = records._write_json

    def write(path: Path, obj):
        if path.name == name:
            raise KeyboardInterrupt("killed")
        real(path, obj)

    monkeypatch.setattr(records, "_write_json", write)


def test_missing_commit_record_falls_back_to_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "a", {"w": np.zeros(3)}, {"i": 1})
    with monkeypatch.context() as m:
        _fail_on(m, "b.json")
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(tmp_path, "b", {"w": np.ones(3)}, {"i": 2})
    assert len(list(tmp_path.glob("b.*.safetensors"))) == 1  # tensors landed, record did not
    c = load_checkpoint(tmp_path)
    assert c.tag == "a" and c.meta == {"i": 1}
    with pytest.raises(CheckpointError, match="no commit record names this file"):
        load_checkpoint(next(tmp_path.glob("b.*.safetensors")))
    # The pointer lags the record: the directory still loads the previous checkpoint.
    with monkeypatch.context() as m:
        _fail_on(m, "latest.json")
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(tmp_path, "c", {"w": np.full(3, 3.0)}, {"i": 3})
    assert load_checkpoint(tmp_path).tag == "a"
    assert load_checkpoint(tmp_path / "c.json").meta == {"i": 3}
    # The next save sweeps the orphan tensors file of the killed save of "b".
    save_checkpoint(tmp_path, "d", {}, {"i": 4})
    assert not list(tmp_path.glob("b.*"))
    (tmp_path / "latest.json").unlink()  # killed before the very first pointer: newest record wins
    assert load_checkpoint(tmp_path).tag == "d"


def test_resaving_a_tag_never_exposes_a_torn_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "best", {"w": np.zeros(4)}, {"v": 1})
    with monkeypatch.context() as m:
        _fail_on(m, "best.json")
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(tmp_path, "best", {"w": np.ones(4)}, {"v": 2})
    c = load_checkpoint(tmp_path / "best.json")
    assert c.meta == {"v": 1}
    np.testing.assert_array_equal(c.tensors["w"], np.zeros(4))
    save_checkpoint(tmp_path, "best", {"w": np.full(4, 2.0)}, {"v": 3})
    assert len(list(tmp_path.glob("best.*.safetensors"))) == 1  # the superseded file is gone
    assert load_checkpoint(tmp_path).meta == {"v": 3}


def test_pointer_to_a_missing_record_lists_the_others(tmp_path):
    save_checkpoint(tmp_path, "a", {}, {})
    save_checkpoint(tmp_path, "b", {}, {})
    (tmp_path / "b.json").unlink()
    with pytest.raises(CheckpointError, match=r"points to b.json, which does not exist; .*present: a.json"):
        load_checkpoint(tmp_path)


def test_keep_prunes_old_checkpoints_but_never_best(tmp_path):
    for i in range(1, 6):
        save_checkpoint(tmp_path, f"epoch-{i}", {"w": np.full(2, float(i))}, {"i": i}, keep=2)
        if i == 2:
            save_checkpoint(tmp_path, "best", {"w": np.zeros(2)}, {"i": i}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "best.json",
        "epoch-4.json",
        "epoch-5.json",
        "latest.json",
    ]
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    assert load_checkpoint(tmp_path).meta == {"i": 5}
    assert load_checkpoint(tmp_path / "best.json").meta == {"i": 2}


def test_temporary_files_of_dead_writers_are_swept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".a.safetensors.{int(dead.stdout)}.0123abcd.tmp"
    live = tmp_path / f".a.safetensors.{os.getppid()}.0123abcd.tmp"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    save_checkpoint(tmp_path, "a", {}, {})
    assert not stale.exists() and live.exists()


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from netc.runtime.checkpoint import save_checkpoint
    d, n = sys.argv[1], int(sys.argv[2])
    save_checkpoint(d, "a", {"w": np.zeros(4, np.float32)}, {"i": 0})
    print("ready", flush=True)
    big = np.empty(n, np.float32)
    i = 1
    while True:
        big.fill(i)
        # Two tags saved in turn: each save overwrites a tag and prunes the oldest.
        save_checkpoint(d, "b" if i % 2 else "c", {"w": big[:4], "data/big": big}, {"i": i}, keep=2)
        i += 1
    """
)


def test_sigkill_during_a_write_leaves_a_loadable_checkpoint(tmp_path):
    n = 50_000_000  # 200 MB of float32: a save takes long enough to be killed inside
    rng = random.Random(4)
    delays = [rng.uniform(k * 0.5, (k + 1) * 0.5) for k in range(4)]
    seen = []
    for k, delay in enumerate(delays):
        d = tmp_path / f"run{k}"
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(d), str(n)], stdout=subprocess.PIPE, cwd=tmp_path
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        c = load_checkpoint(d)  # verifies size and sha256: never a torn checkpoint
        i = c.meta["i"]
        assert c.tag == ("a" if i == 0 else "b" if i % 2 else "c")
        np.testing.assert_array_equal(c.tensors["w"], np.full(4, i, np.float32))
        if i:
            assert c.tensors["data/big"].shape == (n,) and c.tensors["data/big"].min() == i
            assert c.tensors["data/big"].max() == i
        seen.append(i)
        del c
        # The next writer clears what the killed one left behind.
        save_checkpoint(d, "after", {}, {})
        assert not list(d.glob(".*.tmp"))
        named = {
            json.loads(p.read_text())["tensors"]["file"] for p in d.glob("*.json") if p.name != "latest.json"
        }
        assert {p.name for p in d.glob("*.safetensors")} == named
    assert len(seen) == len(delays)


# -- plans -------------------------------------------------------------------------------------

SPEC_A = """
netc: 1
name: small
inputs:
  image: {shape: [1, 8, 8]}
  label: {shape: [], dtype: int64}
modules:
  conv1: {op: conv2d, in: image, out_channels: 6, kernel: 5}
  bn: {op: batchnorm2d, in: conv1}
  act: {op: tanh, in: bn}
  flat: {op: flatten, in: act}
  fc1: {op: linear, in: flat, out_features: 16}
  fc2: {op: linear, in: fc1, out_features: 10}
losses:
  ce: {op: cross_entropy, in: [fc2, label]}
outputs: [fc2]
train: {optimizer: {type: adam, lr: 0.001}}
"""


def _plan(spec_file, text: str, name: str):
    return netc.load(spec_file(text, name)).compile(2)


def _saved(tmp_path: Path, plan, meta: dict | None = None) -> Checkpoint:
    n = plan.stored_elements
    slots = np.arange(2 * plan.trainable_params, dtype=np.float32).reshape(2, -1)
    tensors = training_tensors(plan, np.arange(n, dtype=np.float32), slots, {"data/mean": np.ones(3)})
    save_checkpoint(tmp_path / "ck", "a", tensors, meta or {})
    return load_checkpoint(tmp_path / "ck")


def test_check_compatible_names_the_differing_modules(tmp_path, spec_file):
    a = _plan(spec_file, SPEC_A, "a.yaml")
    text_b = SPEC_A.replace("out_channels: 6", "out_channels: 8").replace("fc2", "fc3")
    text_b = text_b.replace("out_features: 16}", "out_features: 16, bias: false}")
    b = _plan(spec_file, text_b, "b.yaml")
    ckpt = _saved(tmp_path, a)
    assert check_compatible(ckpt, a) == []
    with pytest.raises(CheckpointError) as e:
        check_compatible(ckpt, b, spec_hash(text_b))
    msg = str(e.value)
    assert f"checkpoint {ckpt.path} does not fit this spec" in msg
    assert "modules only in the checkpoint: fc2\n" in msg
    assert "modules only in this spec: fc3\n" in msg
    assert "parameters only in the checkpoint: fc1.b\n" in msg
    assert "changed shape: conv1.w [6,1,5,5] in checkpoint, [8,1,5,5] in spec" in msg
    assert "changed shape: fc1.w [16,96] in checkpoint, [16,128] in spec" in msg
    assert "bn.running_mean [6] in checkpoint, [8] in spec" in msg
    assert "data" not in msg.replace("does not fit", "")  # extras are not parameters
    with pytest.raises(CheckpointError, match="does not fit"):
        restore_training_tensors(ckpt, b, np.zeros(b.stored_elements, np.float32))


def test_same_parameters_different_spec_text_is_a_note(tmp_path, spec_file):
    a = _plan(spec_file, SPEC_A, "a.yaml")
    ckpt = _saved(tmp_path, a, {"spec_hash": spec_hash(SPEC_A)})
    assert check_compatible(ckpt, a, spec_hash(SPEC_A)) == []
    (note,) = check_compatible(ckpt, a, spec_hash(SPEC_A.replace("0.001", "0.01")))
    assert "the spec changed" in note and spec_hash(SPEC_A)[:12] in note


def test_plan_signature(spec_file):
    sig = plan_signature(_plan(spec_file, SPEC_A, "a.yaml"))
    assert sig["params"]["conv1.w"] == [6, 1, 5, 5]
    assert sig["modules"]["bn"] == {"w": [6], "b": [6], "running_mean": [6], "running_var": [6]}
    assert "bn.running_mean" not in sig["trainable"] and "fc2.b" in sig["trainable"]
    assert sig["optimizer"] == "adam"
    json.dumps(sig)  # plain data


def test_training_tensors_restore_the_flat_buffers_exactly(tmp_path, spec_file):
    plan = _plan(spec_file, SPEC_A, "a.yaml")
    ckpt = _saved(tmp_path, plan)
    assert "optim/1/fc2.w" in ckpt.tensors and "optim/0/bn.running_mean" not in ckpt.tensors
    params = np.zeros(plan.stored_elements, np.float64)  # a float64 executor takes float32 weights
    state = np.zeros((2, plan.trainable_params), np.float32)
    extra = restore_training_tensors(ckpt, plan, params, state)
    np.testing.assert_array_equal(params, np.arange(plan.stored_elements))
    np.testing.assert_array_equal(state.reshape(-1), np.arange(2 * plan.trainable_params))
    assert list(extra) == ["data/mean"]
    with pytest.raises(CheckpointError, match=r"holds 2 optimizer state slot\(s\).*uses 1"):
        restore_training_tensors(ckpt, plan, params, np.zeros((1, plan.trainable_params), np.float32))
    with pytest.raises(ValueError, match="data/mean"):
        training_tensors(plan, params, None, {"mean": np.ones(2)})
