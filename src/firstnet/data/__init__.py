"""Datasets as Keras gives MNIST (uint8 pictures, uint8 labels): found online, in a file or folder, or bundled for offline use."""

import dataclasses
import os
import pathlib
import socket
import sys
import threading


from firstnet.errors import UserError, first_line
# The dataset type and the four formats live in files of their own; they are all part of `firstnet.data`.
from firstnet.data.arrays import (DIGITS, IMAGE_SIZE, NUM_CLASSES, Dataset, one_hot, prepare_images,
                                  validated)
from firstnet.data.bundled import BUNDLED_SOURCE, FORMER_BUNDLED_SOURCES, bundled_subset_path, full_set_hint, load_bundled_subset
from firstnet.data.formats import load_csv_folder, load_idx_folder, load_npz, load_png_folder
from firstnet.data import named

__all__ = ["BUNDLED_SOURCE", "DIGITS", "IMAGE_SIZE", "NUM_CLASSES", "Dataset", "bundled_subset_path", "choose_run_data", "download",
           "first_line", "full_set_hint", "host_reachable", "keras_cache_path", "load_bundled_subset",
           "load_csv_folder", "load_data", "load_dataset", "load_idx_folder", "load_mnist", "load_npz", "load_path",
           "load_png_folder", "load_run_data", "network_reachable", "one_hot", "prepare_images", "validated"]

# Keras downloads MNIST from here; one cheap connection attempt tells whether a download can work at all.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


REACHABILITY_TIMEOUT_SECONDS = 1.5


# The name the code had when every set was MNIST; kept so that code written for it still runs.
Mnist = Dataset


def load_data(path=None, *, announce=None):
    """Return MNIST in keras's layout; see `load_dataset` for where it comes from."""
    return load_dataset(path, announce=announce).as_keras()


def load_mnist(path=None, *, announce=None, dataset=None):
    """The tutorial's word for loading MNIST: `load_dataset`, which also loads the other sets by path or name."""
    return load_dataset(path, announce=announce, dataset=dataset)


def load_dataset(path=None, *, announce=None, dataset=None):
    """Find MNIST, or the set named: `path` or $FIRSTNET_DATA, keras's cache, keras's download, then the bundled 5,000-digit subset.

    A path the user named is never silently replaced by another source: if it is wrong, that is an error.
    `announce` receives one line when the bundled subset is used (default: print to stderr). `dataset` names a
    set instead ("mnist" or "fashion_mnist", from keras's cache or download only; see named.py); `path` may
    also be a folder of your own pictures, one folder per class (folders.py).
    """
    announce = announce or (lambda line: print(line, file=sys.stderr))
    if path and dataset:
        raise UserError(f"--data {path} and --dataset {dataset}: choose one, a path or a dataset's name")
    if dataset:
        return named.load_named(dataset, network_reachable=network_reachable)
    if path:
        return load_path(path)
    if os.environ.get("FIRSTNET_DATA"):
        return load_path(os.environ["FIRSTNET_DATA"], origin="FIRSTNET_DATA")
    cached = keras_cache_path()
    if cached.is_file():
        return load_npz(cached)
    offline_by_choice = os.environ.get("FIRSTNET_OFFLINE", "") not in ("", "0")
    if offline_by_choice:
        reason = "FIRSTNET_OFFLINE is set"
    elif not network_reachable():
        # Keras would print "Downloading data from ..." and retry for seconds before failing: skip it.
        reason = f"{DOWNLOAD_HOST[0]} cannot be reached (no network?)"
    else:
        try:
            return download()
        except Exception as error:  # Any failure to download means: fall back, and say why.
            reason = f"download failed ({first_line(error)})"
    data = load_bundled_subset()
    announce(
        f"firstnet: MNIST not in keras's cache and {reason}; using the {len(data.x_train) + len(data.x_test):,} real "
        f"MNIST digits bundled with firstnet ({len(data.x_train)} train / {len(data.x_test)} test); "
        f"{full_set_hint(offline_by_choice)}."
    )
    return data


OWN_TEST_SET = "the run's own test set"


def load_run_data(run_metrics, path=None, *, announce=None):
    """The MNIST to score a saved run on (its metrics.json as a dict); see `choose_run_data` for which."""
    return choose_run_data(run_metrics, path, announce=announce)[0]


def choose_run_data(run_metrics, path=None, *, announce=None):
    """The MNIST to score a saved run on, and a few words on which set that is (for the learner to read).

    A run is scored on its own test set unless told otherwise: `path` (the user's --data) wins; else the file
    or folder the run recorded (`data_path` in metrics.json, or for older runs a `data_source` that names one);
    else the bundled subset when the run trained on it; else the default sources of `load_dataset`. A recorded path
    that is gone is said in one line through `announce` (default: stderr) before falling back.
    """
    announce = announce or (lambda line: print(line, file=sys.stderr))
    # Pictures of your own are made as the run's training pictures were (its "preparation"), whatever their size.
    preparation = (run_metrics or {}).get("preparation")
    if path:
        return load_path(path, for_scoring=True, preparation=preparation), "the set you named"
    if not run_metrics:
        return load_dataset(announce=announce), "no run record says what it trained on"
    if run_metrics.get("dataset") == "fashion_mnist":
        return named.load_named("fashion_mnist", network_reachable=network_reachable), OWN_TEST_SET
    recorded_path = run_metrics.get("data_path")
    source = str(run_metrics.get("data_source") or "")
    if recorded_path is None and os.path.isabs(source) and ("data_path" not in run_metrics or os.path.exists(source)):
        # Runs saved before data_path existed name their file or folder as the source; so does a run trained on
        # a file the library was handed directly (`load_npz`), whose data_path is null.
        recorded_path = source
    if recorded_path and os.path.exists(recorded_path):
        try:
            return load_path(recorded_path, for_scoring=True, preparation=preparation), OWN_TEST_SET
        except UserError as error:
            raise UserError(f"{error} (the run was trained on this data; name other data to score it on)") from error
    if recorded_path:
        announce(f"firstnet: the run's data {recorded_path} is gone; scoring it on the default MNIST instead")
    elif source == BUNDLED_SOURCE or source in FORMER_BUNDLED_SOURCES:
        return load_bundled_subset(), OWN_TEST_SET
    data = load_dataset(announce=announce)
    # MNIST's 10,000 test digits are the same whichever file holds them.
    if data.is_full and run_metrics.get("data_full"):
        return data, OWN_TEST_SET
    trained_on = "the full MNIST" if run_metrics.get("data_full") else (source or "data it did not record")
    return data, f"not the run's own test set, it trained on {trained_on}"


_network_answer = None  # The reachability check's answer, remembered: the network is asked once per process.


def network_reachable():
    """Whether keras's download host answers, found out once per process with one short connection attempt."""
    global _network_answer
    if _network_answer is None:
        _network_answer = host_reachable(*DOWNLOAD_HOST, timeout_seconds=REACHABILITY_TIMEOUT_SECONDS)
    return _network_answer


def host_reachable(host, port, timeout_seconds=REACHABILITY_TIMEOUT_SECONDS):
    """True if a TCP connection to host:port opens within `timeout_seconds`, name lookup included.

    The lookup runs in a helper thread because `getaddrinfo` ignores socket timeouts: a machine whose DNS server
    is unreachable would otherwise wait for the system's own timeout, often 5 s or more.
    """
    answer = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout_seconds):
                answer.append(True)
        except OSError:
            answer.append(False)

    helper = threading.Thread(target=attempt, name="firstnet-network-check", daemon=True)
    helper.start()
    helper.join(timeout_seconds)
    return bool(answer and answer[0])


def keras_cache_path():
    """Where `keras.datasets.mnist.load_data()` keeps its download: $KERAS_HOME/datasets/mnist.npz."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(keras_home) / "datasets" / "mnist.npz"


def download(timeout_seconds=30):
    """Download with keras itself (it caches the file), with a timeout so a silent firewall cannot hang a class."""
    import keras

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_seconds)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return validated(x_train, y_train, x_test, y_test, source=f"keras download, cached at {keras_cache_path()}")


def load_path(path, origin="--data", *, for_scoring=False, preparation=None):
    """Load MNIST from a file or folder in one of four formats, chosen by what is there, or your own pictures.

    `origin` names where the path came from (the --data flag or the FIRSTNET_DATA variable), so that a
    learner who set the variable long ago is told where the wrong path is set. `for_scoring` says the data is
    to score a trained model: a one-folder set of your own pictures is then scored on every picture.
    `preparation` (a run's) makes a folder of your own pictures as that run's were (folders.load_class_folders).
    """
    path = pathlib.Path(path).expanduser()
    try:
        return dataclasses.replace(_load_path(path, origin, for_scoring, preparation), path=str(path.resolve()))
    except UserError as error:
        if origin == "--data" or str(error).startswith(origin):
            raise
        raise UserError(f"{error} (this path comes from {origin}: fix it, or unset {origin} to use keras's "
                        "cache, a download or the bundled digits)") from error


def _load_path(path, origin, for_scoring=False, preparation=None):
    if path.is_file():
        return load_npz(path)
    if not path.is_dir():
        raise UserError(f"{origin} {path}: no such file or folder; give a mnist.npz, or a folder of IDX, PNG or CSV files")
    if (path / "training").is_dir() or (path / "testing").is_dir():
        return load_png_folder(path)
    if (path / "mnist_train.csv").is_file() or (path / "mnist_test.csv").is_file():
        return load_csv_folder(path)
    if any(path.glob("*-idx[13]-ubyte*")):
        return load_idx_folder(path)
    # Imported here, not at the top: they import Pillow, which `firstnet train` would otherwise load before it
    # starts reading MNIST (tests/test_startup.py; about a tenth of the start-up's own imports).
    from firstnet.data import collection, folders

    if collection.is_collection(path):  # The class's own digits (collection.py): labelled by their digit folders.
        return collection.load_collection(path, for_scoring=for_scoring)
    if folders.is_class_folders(path):
        return folders.load_class_folders(path, for_scoring=for_scoring, preparation=preparation)
    raise UserError(
        f"{origin} {path}: found no MNIST here; expected mnist.npz, LeCun's IDX files (train-images-idx3-ubyte...), "
        "training/ and testing/ PNG folders, mnist_train.csv and mnist_test.csv, or your own pictures in one folder "
        "per class (train/<class>/ and test/<class>/, or just <class>/)"
    )
