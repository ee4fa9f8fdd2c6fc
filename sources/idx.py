"""`idx`: IDX files (the original MNIST format, plain or gzip'd): images, and labels for a target."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import PATH, Source

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    from ..runtime.data.errors import DataError
    from ..runtime.data.readers import read_idx
    from ..runtime.data.sources import Raw, data_file

    path = data_file(data, "path", base_dir)
    arrays = {"images": read_idx(path)}
    describe = {"images": f"{path} (IDX images)"}
    if data.get("labels"):
        lpath = data_file(data, "labels", base_dir)
        arrays["labels"] = read_idx(lpath)
        describe["labels"] = f"{lpath} (IDX labels)"
    elif len(inputs) >= 2:
        raise DataError(
            f"data.labels is required for data.source: idx with a target input '{list(inputs)[-1]}' "
            "(the IDX labels file)"
        )
    return Raw(arrays, str(path), "images", "labels", None, describe)


SOURCE = Source(
    name="idx",
    doc="IDX files, the original MNIST format, plain or gzip'd: the images, and the labels",
    fields={
        "path": {**PATH, "description": "the images file, relative to the spec's folder"},
        "labels": {"type": "string", "description": "the labels file, relative to the spec's folder"},
    },
    loader=load,
)
