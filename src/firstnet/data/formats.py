"""The four formats MNIST comes in: keras's npz, LeCun's IDX files, PNG folders and Kaggle's CSV."""

import gzip
import pathlib
import sys
import warnings
import zipfile

import numpy as np

from firstnet.errors import UserError, first_line
from firstnet.files import files_inside, links_note
from firstnet.data.arrays import IMAGE_SIZE, MNIST_ARRAYS, NUM_CLASSES, validated
from firstnet.data.unpacked import kept_unpacked


def load_npz(path):
    """Keras's own format: an .npz with x_train, y_train, x_test, y_test.

    Keras's mnist.npz is compressed, and unpacking its 55 MB would be a part of every run's start-up. So
    the first load keeps an unpacked copy in firstnet's cache folder (`files.cache_folder("mnist")`, one copy per
    file), and later loads read that copy for as long as the file keeps its size and modification time.
    """
    path = pathlib.Path(path)
    return kept_unpacked(path, str(path), read=lambda: _read_npz(path))


def _read_npz(path):
    """The validated `Dataset` in the .npz at `path`, and whether the file is compressed."""
    _refuse_what_is_not_npz(path)
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


NPZ_HEADERS = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")  # A zip archive (empty or not), or one .npy array.


def _refuse_what_is_not_npz(path):
    """A file that is neither a zip nor a .npy is not MNIST in keras's format: say so, in the learner's words.

    NumPy would try to read it as pickled Python objects and answer about `allow_pickle`, which is no help.
    """
    try:
        with open(path, "rb") as stream:
            opening = stream.read(6)
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({first_line(error)})") from error
    if any(opening.startswith(header) for header in NPZ_HEADERS):
        return
    found = "it is empty" if not opening else "it is not a zip archive"
    if path.suffix == ".csv" or "ubyte" in path.name:
        advice = "give the folder that holds it (with its partner files), not the file"
    else:
        advice = "give keras's mnist.npz, or a folder of IDX, PNG or CSV files"
    raise UserError(f"{path}: not an .npz file ({found}); {advice}")


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
    if found is not None and found.is_symlink():
        raise UserError(f"{found}: is a link; firstnet reads only the files inside a folder (copy the file instead)")
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
    entries, links = [], [entry for entry in split_folder.iterdir() if entry.is_symlink()]
    for label_folder in split_folder.iterdir():
        if not label_folder.is_dir() or label_folder.is_symlink():
            continue
        if label_folder.name not in [str(digit) for digit in range(NUM_CLASSES)]:
            raise UserError(f"{label_folder}: label folders must be named 0 to 9")
        found, linked = files_inside(label_folder)
        links += linked
        for file in (file for file in found if file.suffix == ".png"):
            if not file.stem.isdigit():
                raise UserError(f"{file}: PNG files must be named by their original index, like 123.png")
            entries.append((int(file.stem), int(label_folder.name), file))
    if links:
        print(f"firstnet: {links_note(links)}", file=sys.stderr)
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
            with Image.open(file, formats=("PNG",)) as image:
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
    if file.is_symlink():
        raise UserError(f"{file}: is a link; firstnet reads only the files inside a folder (copy the file instead)")
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
