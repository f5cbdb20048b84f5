"""Datasets by name (`--dataset mnist|fashion_mnist`), through keras.datasets and its own cache.

Keras keeps what it downloads under $KERAS_HOME/datasets/ (~/.keras/datasets/) and reads it from there without
a network once it is there. Offline with no copy there, Keras would retry a download for a long while and then
fail with a traceback: firstnet says instead, in one line, which files to put where.
"""

import dataclasses
import os
import pathlib
import socket

from firstnet.errors import UserError, first_line
from firstnet.data.arrays import validated

from firstnet.choices import DATASETS  # noqa: E402  ("mnist", "fashion_mnist")

# Fashion-MNIST's ten classes, in the order of its labels 0..9 (Zalando's own names, in lower case).
FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot")

# The files each dataset's keras loader reads from its cache, relative to $KERAS_HOME/datasets/.
CACHED_FILES = {
    "mnist": ("mnist.npz",),
    "fashion_mnist": tuple(f"fashion-mnist/{name}" for name in (
        "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz")),
}
DOWNLOAD_FROM = {"mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                 "fashion_mnist": "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"}


def keras_datasets_folder():
    """$KERAS_HOME/datasets, where keras.datasets keeps its downloads (~/.keras/datasets by default)."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(keras_home) / "datasets"


def load_named(name, *, network_reachable=None, timeout_seconds=30):
    """The dataset `name` as an `Dataset` with its class names, from keras's cache or keras's download.

    `network_reachable` is a function telling whether a download can work (data/__init__.py's check).
    """
    import numpy as np

    if name not in DATASETS:
        raise UserError(f"--dataset {name}: unknown; choose one of {', '.join(DATASETS)}")
    folder = keras_datasets_folder()
    missing = [file for file in CACHED_FILES[name] if not (folder / file).is_file()]
    offline = os.environ.get("FIRSTNET_OFFLINE", "") not in ("", "0")
    if missing and (offline or (network_reachable is not None and not network_reachable())):
        where = folder / pathlib.Path(CACHED_FILES[name][0]).parent
        raise UserError(f"--dataset {name}: not in keras's cache and no network to download it; put "
                        f"{', '.join(pathlib.Path(file).name for file in missing)} (from {DOWNLOAD_FROM[name]}) "
                        f"into {where}/")
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_seconds)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as error:  # A broken cached file or a failed download: one line, with what to do.
        raise UserError(f"--dataset {name}: keras could not load it ({first_line(error)}); delete the broken "
                        f"files in {folder} to download them again, or put the original files there") from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    source = f"keras.datasets.{name}, cached in {folder}"
    data = validated(np.asarray(x_train), np.asarray(y_train), np.asarray(x_test), np.asarray(y_test), source=source)
    if name == "fashion_mnist":
        data = dataclasses.replace(data, class_names=FASHION_CLASSES, dataset="fashion_mnist",
                                   preparation="resized to 28x28, grey")
    return data
