"""`npz`: the arrays of a NumPy .npz archive, fed by input name, by `columns`, or `x` / `y`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import PATH, Source

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    from ..runtime.data.errors import DataError
    from ..runtime.data.readers import read_npz
    from ..runtime.data.sources import Raw, data_file

    path = data_file(data, "path", base_dir)
    arrays = read_npz(path)
    if not arrays:
        raise DataError(f"{path}: the .npz archive holds no arrays (data.path)")
    return Raw(arrays, str(path), "x" if "x" in arrays else None, "y" if "y" in arrays else None)


SOURCE = Source(
    name="npz",
    doc="the arrays of a NumPy .npz archive: each input by name, by `columns`, or x / y",
    fields={"path": PATH},
    loader=load,
)
