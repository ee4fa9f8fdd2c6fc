"""Everything a training run reads: the data sources of a spec's `data` section.

``load_dataset`` turns a `data` section into a :class:`Dataset` whose arrays are keyed by the
spec's input names, in the spec's per-sample shapes and dtypes; ``split_dataset`` makes the
seeded (stratified for classification) train / validation / test split; :class:`Normalizer`
and :class:`Augmenter` transform samples; ``read_inputs`` reads the input files of
`netc predict`. Every problem a person can cause raises :class:`DataError` with one line
naming the place. docs/data.md is the reference. NumPy only; no pickle anywhere.

One concern per module: errors.py (DataError), readers.py (npy/npz/CSV/IDX files), sources.py
(what a loader returns, and its helpers; the sources themselves are declared in
netc.sources), fit.py (arrays to spec inputs, predict input files), dataset.py (Dataset,
load_dataset, split_dataset), transforms.py (Normalizer, Augmenter).
"""

from ...sources.majority import majority_task
from .dataset import Dataset, load_dataset, split_dataset
from .errors import DataError
from .fit import read_inputs
from .readers import read_idx
from .transforms import Augmenter, Normalizer, augment_config, normalized_splits

__all__ = [
    "Augmenter",
    "DataError",
    "Dataset",
    "Normalizer",
    "augment_config",
    "load_dataset",
    "majority_task",
    "normalized_splits",
    "read_idx",
    "read_inputs",
    "split_dataset",
]
