"""The data file readers (npz, npy, CSV, IDX) against damaged, lying and hostile files: every
problem is one DataError naming the file (and member, line or header field), never a
MemoryError, a tokenizer's traceback or the file's contents; and a seeded byte-mutation fuzz of
valid files in every format lets nothing but DataError escape."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from netc.runtime.data import DataError, load_dataset, read_idx, read_inputs

XY = {"x": {"shape": [3]}, "y": {"shape": [], "dtype": "int64"}}


def error(fn, *args, **kw) -> str:
    with pytest.raises(DataError) as e:
        fn(*args, **kw)
    return str(e.value)


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def with_header(a: np.ndarray, header: str) -> bytes:
    """An .npy file of ``a``'s data under a hand-written header (version 1.0)."""
    h = header.encode("latin1")
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + a.tobytes()


def npz(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def idx_bytes(a: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[a.dtype.type]
    dims = b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return bytes([0, 0, code, a.ndim]) + dims + a.astype(a.dtype.newbyteorder(">")).tobytes()


def load_npz(tmp_path: Path, name: str) -> str:
    return error(load_dataset, {"source": "npz", "path": name}, XY, tmp_path)


# -- npz and npy -------------------------------------------------------------------------------------
def test_an_npz_member_that_is_not_npy_is_named(tmp_path):
    x = np.zeros((4, 3), np.float32)
    npz(tmp_path / "m.npz", {"x.npy": npy_bytes(x), "notes.txt": b"hello"})
    msg = load_npz(tmp_path, "m.npz")
    assert "m.npz: member 'notes.txt' is not an .npy array" in msg


def test_an_npy_header_declaring_an_impossible_shape_is_refused_before_allocating(tmp_path):
    x = np.zeros(3, np.float32)
    (tmp_path / "big.npy").write_bytes(
        with_header(x, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 1000), }")
    )
    msg = error(read_inputs, tmp_path / "big.npy", XY, need=["x"])
    assert "big.npy: not a valid .npy array" in msg
    assert "[100000000000, 1000] float32" in msg and "12 bytes follow it" in msg
    # the same inside an archive names the member
    npz(tmp_path / "big.npz", {"x.npy": (tmp_path / "big.npy").read_bytes()})
    assert "big.npz member 'x.npy': not a valid .npy array" in load_npz(tmp_path, "big.npz")


@pytest.mark.parametrize(
    "header, words",
    [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,", "not a dict"),  # unterminated
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "not a dict"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", "non-negative integers"),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }", "fortran_order"),
        ("{'descr': 'not a dtype', 'fortran_order': False, 'shape': (3,), }", "descr"),
        ("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "Python objects"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2**62, 2**62), }", "not a dict"),
        ('"""', "not a dict"),  # numpy's own reader raises a tokenizer error on this one
        ("\x00\x01\x02", "not a dict"),
    ],
)
def test_a_malformed_npy_header_is_one_message(tmp_path, header, words):
    (tmp_path / "h.npy").write_bytes(with_header(np.zeros(3, np.float32), header))
    msg = error(read_inputs, tmp_path / "h.npy", XY, need=["x"])
    assert msg.startswith(f"{tmp_path / 'h.npy'}: ") and words in msg


def test_a_damaged_header_raises_no_python_warning_besides_the_message(tmp_path):
    import warnings

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3or 4,), }"  # SyntaxWarning in ast
    (tmp_path / "w.npy").write_bytes(with_header(np.zeros(3, np.float32), header))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "not a dict" in error(read_inputs, tmp_path / "w.npy", XY, need=["x"])
    assert caught == []


@pytest.mark.parametrize("shape", ["(0, 4611686018427387904, 8)", "(" + "1, " * 70 + "0)"])
def test_an_empty_npy_of_a_shape_numpy_cannot_make_is_one_message(tmp_path, shape):
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    (tmp_path / "e.npy").write_bytes(with_header(np.zeros(0, np.float32), header))
    msg = error(read_inputs, tmp_path / "e.npy", XY, need=["x"])
    assert msg.startswith(f"{tmp_path / 'e.npy'}: not a valid .npy array: NumPy cannot make an array")


def test_random_bytes_named_npz_are_not_a_zip_archive(tmp_path):
    (tmp_path / "r.npz").write_bytes(np.random.default_rng(0).bytes(300))
    msg = load_npz(tmp_path, "r.npz")
    assert "r.npz: malformed .npz file: not a zip archive" in msg and "Python objects" not in msg


def test_a_truncated_or_damaged_npz_member_is_named(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    good = npz(tmp_path / "g.npz", {"x.npy": npy_bytes(x), "y.npy": npy_bytes(np.arange(4))}, True)
    data = bytearray(good.read_bytes())
    data[60] ^= 0xFF  # inside x.npy's deflate stream
    (tmp_path / "d.npz").write_bytes(bytes(data))
    assert "d.npz" in load_npz(tmp_path, "d.npz")
    (tmp_path / "t.npz").write_bytes(good.read_bytes()[:-40])
    assert "t.npz: malformed .npz file" in load_npz(tmp_path, "t.npz")


def test_the_reader_keeps_every_layout_numpy_writes(tmp_path):
    x = np.asfortranarray(np.arange(12, dtype=">f8").reshape(4, 3))
    y = np.array([0, 1, 2, 1], np.int32)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)
    ds = load_dataset({"source": "npz", "path": "c.npz"}, XY, tmp_path)
    np.testing.assert_array_equal(ds.arrays["x"], x)
    np.testing.assert_array_equal(ds.arrays["y"], y)
    np.save(tmp_path / "f.npy", x)
    (tmp_path / "f.npy.gz").write_bytes(gzip.compress((tmp_path / "f.npy").read_bytes()))
    for name in ("f.npy", "f.npy.gz"):
        np.testing.assert_array_equal(read_inputs(tmp_path / name, XY, need=["x"])["x"], x)


# -- CSV and IDX -------------------------------------------------------------------------------------
SECRET = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize("name", ["passwd", "secret.csv"])
def test_a_file_that_is_not_csv_is_never_echoed(tmp_path, name):
    (tmp_path / name).write_text(SECRET)
    msg = error(load_dataset, {"source": "csv", "path": name}, XY, tmp_path)
    assert f"{tmp_path / name}:2:1: expected a number" in msg
    rest = msg.replace(str(tmp_path), "")
    for word in ("root", "daemon", "bash", "nologin"):
        assert word not in rest


def test_csv_errors_give_line_and_character_column_not_the_text(tmp_path):
    (tmp_path / "a.csv").write_text("1, 2, 3, 0\n\n4,  five, 6, 1\n")
    msg = error(load_dataset, {"source": "csv", "path": "a.csv"}, XY, tmp_path)
    assert msg.startswith(f"{tmp_path / 'a.csv'}:3:5: expected a number (field 2 of the row")
    assert "five" not in msg
    (tmp_path / "b.csv").write_bytes(b"1,2,3,0\n4,5,\xff6,1\n")
    msg = error(load_dataset, {"source": "csv", "path": "b.csv"}, XY, tmp_path)
    assert f"{tmp_path / 'b.csv'}:2:5: not UTF-8 text" in msg


def test_idx_headers_that_lie_about_the_size_are_refused(tmp_path):
    good = idx_bytes(np.zeros((4, 3), np.uint8))
    lying = good[:4] + (10**9).to_bytes(4, "big") + good[8:]
    (tmp_path / "lie.idx").write_bytes(lying)
    msg = error(read_idx, tmp_path / "lie.idx")
    assert "lie.idx: IDX file truncated" in msg and "[1000000000, 3]" in msg
    (tmp_path / "cut.idx").write_bytes(good[:-5])
    assert "truncated" in error(read_idx, tmp_path / "cut.idx")
    huge = b"\x00\x00\x08\x04" + b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff" * 3  # 0 x 2^32-1 x ...
    (tmp_path / "zero.idx").write_bytes(huge)
    assert "zero.idx: the IDX header's dimensions [0, 4294967295, 4294967295, 4294967295]" in error(
        read_idx, tmp_path / "zero.idx"
    )
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-6])
    assert "cut.gz: cannot read the file" in error(read_idx, tmp_path / "cut.gz")


def test_a_gzip_bomb_is_refused_before_it_fills_the_memory(tmp_path, monkeypatch):
    import netc.compiler.host as host

    (tmp_path / "bomb.idx.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((4000, 1000), np.uint8))))
    monkeypatch.setattr(host, "available_memory", lambda: 1 << 20)  # 4 MB unpacked, 1 MiB free
    msg = error(read_idx, tmp_path / "bomb.idx.gz")
    assert "bomb.idx.gz: the gzip'd data unpacks to more than the 1.00 MiB of memory available" in msg
    monkeypatch.setattr(host, "available_memory", lambda: 1 << 30)
    assert read_idx(tmp_path / "bomb.idx.gz").shape == (4000, 1000)
    # several gzip members in one file are one stream, as gzip(1) writes them
    two = gzip.compress(b"1,2,3,0\n") + gzip.compress(b"4,5,6,1\n")
    (tmp_path / "two.csv").write_bytes(two)
    ds = load_dataset({"source": "csv", "path": "two.csv"}, XY, tmp_path)
    assert len(ds) == 2


# -- zero rows ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["e.npz", "e.npy", "e.csv"])
def test_a_file_without_rows_is_refused(tmp_path, name):
    empty = np.zeros((0, 3), np.float32)
    if name.endswith(".npz"):
        np.savez(tmp_path / name, x=empty)
    elif name.endswith(".npy"):
        np.save(tmp_path / name, empty)
    else:
        (tmp_path / name).write_text("a,b,c\n")
    msg = error(read_inputs, tmp_path / name, XY, need=["x"])
    assert str(tmp_path / name) in msg and ("no samples (--input)" in msg or "no data rows" in msg)


# -- fuzz --------------------------------------------------------------------------------------------
def _valid_files(d: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    plain = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x.astype(np.float64), y=y)
    rows = "\n".join(",".join(f"{v:.3f}" for v in r) + f",{c}" for r, c in zip(x, y, strict=True))
    return {
        "a.npz": plain,
        "b.npz": buf.getvalue(),
        "c.npy": npy_bytes(x),
        "d.csv": ("a,b,c,label\n" + rows + "\n").encode(),
        "e.idx": idx_bytes((x * 10).astype(np.int32)),
        "f.npy.gz": gzip.compress(npy_bytes(x)),
    }


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        how = int(rng.integers(0, 6))
        at = int(rng.integers(0, max(len(b), 1)))
        if how == 0 and b:  # flip bits
            b[at] ^= int(rng.integers(1, 256))
        elif how == 1:  # truncate
            del b[at:]
        elif how == 2:  # insert random bytes
            b[at:at] = rng.bytes(int(rng.integers(1, 16)))
        elif how == 3 and b:  # delete a run
            del b[at : at + int(rng.integers(1, 16))]
        elif how == 4 and len(b) >= 4:  # a huge or odd little/big-endian integer
            b[at : at + 4] = int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, 255])).to_bytes(4, "little")
        else:  # a byte from the header alphabet where the parsers look
            b[min(at, 127) : min(at, 127) + 1] = bytes([int(rng.choice(list(b"(),:'\"{}-9\x00\n")))])
    return bytes(b)


def test_fuzzed_data_files_raise_nothing_but_data_error(tmp_path):
    valid = _valid_files(tmp_path)
    rng = np.random.default_rng(20261203)
    outcomes = {"ok": 0, "DataError": 0}
    for case in range(600):
        name = list(valid)[case % len(valid)]
        path = tmp_path / f"{case}-{name}"
        path.write_bytes(_mutate(valid[name], rng))
        try:
            if name.endswith(".csv"):
                load_dataset({"source": "csv", "path": path.name}, XY, tmp_path, {"y": 3})
            elif name.endswith(".npz"):
                load_dataset({"source": "npz", "path": path.name}, XY, tmp_path, {"y": 3})
            elif name.endswith(".idx"):
                read_idx(path)
            read_inputs(path, XY, need=["x"])
            outcomes["ok"] += 1
        except DataError as e:
            msg = str(e)
            assert "\n" not in msg and str(path.name) in msg, (case, msg)
            outcomes["DataError"] += 1
        path.unlink()
    assert outcomes["DataError"] > 400 and outcomes["ok"] > 10, outcomes
