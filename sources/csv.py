"""`csv`: a table of numbers; by default the last columns are the target, the rest the features."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import PATH, Source

if TYPE_CHECKING:
    from ..runtime.data.sources import Raw


def load(data: dict, inputs: dict[str, dict], base_dir: Path, classes: dict[str, int]) -> Raw:
    from ..runtime.data.readers import read_csv
    from ..runtime.data.sources import csv_raw, data_file

    path = data_file(data, "path", base_dir)
    table, names, lines = read_csv(path, data.get("header"), data.get("delimiter") or ",")
    return csv_raw(path, table, names, lines, inputs, data.get("columns") or {})


SOURCE = Source(
    name="csv",
    doc="a table of numbers: by default the last columns are the target, the rest the features",
    fields={
        "path": PATH,
        "header": {
            "type": "boolean",
            "description": "whether the first row names the columns (default: detected)",
        },
        "delimiter": {"type": "string", "minLength": 1, "description": "the column separator (default ,)"},
    },
    loader=load,
)
