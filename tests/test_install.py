"""The README's two commands in order: a non-editable install must not write numba's kernel cache
into the installed package (a later `pip install -e .` would leave those folders behind, and they
would shadow the editable install). The cache goes to a per-user directory instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_architecture import modules
from tests.tinyspec import classifier

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["netc", "spec", "compiler", "runtime", "sources", "schemas", "pyproject.toml", "README.md"]


def _files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _ok(cmd: list) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_install_then_run_writes_nothing_into_the_package(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves no build/ or egg-info in the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    # The dependencies come from this interpreter's site-packages; netc itself is installed anew.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    # The wheel is built by this interpreter's setuptools (the venv's bundled one is too old for
    # pyproject's license field), then installed as a user's `pip install .` would install it.
    wheels = tmp_path / "wheels"
    _ok([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, src])
    _ok([py, "-m", "pip", "install", "-q", "--no-deps", *wheels.glob("netc-*.whl")])
    where = subprocess.run(
        [py, "-c", "import netc, pathlib; print(pathlib.Path(netc.__file__).parent)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    package = Path(where)
    assert venv in package.parents, f"netc imported from {package}, not the fresh install"
    # Every module of the source tree comes from the wheel: a subpackage left out of pyproject's
    # list would otherwise be found through the checkout's own editable install, which this
    # venv's system site-packages can see.
    names = sorted(modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    print(n, importlib.import_module(n).__file__)"
    out = subprocess.run([py, "-c", code, *names], check=True, capture_output=True, text=True, cwd=tmp_path)
    elsewhere = [ln for ln in out.stdout.splitlines() if str(venv) not in ln]
    assert not elsewhere, f"not in the wheel (check pyproject's packages): {elsewhere[:5]}"
    before = _files(package)

    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        classifier("tiny", "optimizer: {type: sgd, lr: 0.1}\nbatch_size: 16\nepochs: 1", "{source: blobs}")
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NETC_CACHE_DIR", "NUMBA_CACHE_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    r = subprocess.run(
        [venv / "bin" / "netc", "run", str(spec), "--out", str(tmp_path / "run"), "--quiet", "--no-plots"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert _files(package) == before, sorted(_files(package) - before)[:10]
    cached = list((tmp_path / "xdg" / "netc").rglob("*.nbi"))
    assert cached, "numba wrote no kernel cache under $XDG_CACHE_HOME/netc"


def test_cache_dir_resolution_order() -> None:
    from netc.runtime.cache import cache_dir

    home = str(Path.home())
    assert cache_dir({}) == Path(home) / ".cache" / "netc"
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/netc")
    assert cache_dir({"XDG_CACHE_HOME": "/x", "NUMBA_CACHE_DIR": "/n"}) == Path("/n")
    assert cache_dir({"XDG_CACHE_HOME": "/x", "NUMBA_CACHE_DIR": "/n", "NETC_CACHE_DIR": "/c"}) == Path("/c")


def test_runtime_points_numba_at_the_cache_dir() -> None:
    import numba

    import netc.runtime

    assert str(netc.runtime.KERNEL_CACHE_DIR) == numba.config.CACHE_DIR
    package = Path(netc.runtime.__file__).parent
    assert package not in Path(numba.config.CACHE_DIR).parents


def test_kernel_cache_is_keyed_by_every_runtime_source(tmp_path) -> None:
    """numba keys a cached kernel by its own file only; a kernel inlining a function of another
    file (a fused epilogue's activation) would keep stale code after that file changes. The key
    of all runtime sources changes with any of them."""
    import os

    from netc.runtime.cache import _prune, sources_key

    src = tmp_path / "runtime"
    (src / "kernels").mkdir(parents=True)
    (src / "kernels" / "tanh.py").write_text("a = 1\n")
    (src / "kernels" / "conv2d.py").write_text("b = 2\n")
    before = sources_key(src)
    assert sources_key(src) == before
    os.utime(src / "kernels" / "tanh.py", ns=(1, 10**18))  # an edit elsewhere than the caller
    assert sources_key(src) != before
    cache = tmp_path / "cache"
    for i in range(6):
        (cache / f"src-{i}").mkdir(parents=True)
        os.utime(cache / f"src-{i}", (i, i))
    _prune(cache, keep=4)
    assert sorted(p.name for p in cache.iterdir()) == ["src-2", "src-3", "src-4", "src-5"]


def test_the_kernel_cache_lives_under_the_source_key() -> None:
    import numba

    from netc.runtime.cache import sources_key

    assert Path(numba.config.CACHE_DIR).name == f"src-{sources_key()}"
