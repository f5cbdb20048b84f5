"""MNIST as arrays: the dataset type, its checks, and the tutorial's reshape, scale and one-hot steps."""

import dataclasses

import numpy as np

from firstnet.errors import UserError

IMAGE_SIZE = 28
NUM_CLASSES = 10
MNIST_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
# MNIST's classes are the digits; a set of your own pictures names its classes by its folders (data/folders.py).
DIGITS = tuple(str(digit) for digit in range(NUM_CLASSES))


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Any dataset of pictures as checked arrays: the four of `keras.datasets.mnist.load_data()`, where they came
    from, and what their classes are (MNIST, Fashion-MNIST, folders of your own pictures, a class collection)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    # The file or folder it was read from, when the user named one (--data or FIRSTNET_DATA): a run records it,
    # so that `evaluate` and `look` score the run on its own test digits.
    path: str | None = None
    # What each label means: label i is class_names[i]. MNIST's are the digits '0'..'9'.
    class_names: tuple = DIGITS
    # Which set this is: "mnist" (any of its formats), "fashion_mnist" (data/named.py), or "folders" (your own
    # pictures, data/folders.py). Only MNIST's pictures are prepared the MNIST way for predict (predict.py).
    dataset: str = "mnist"
    # How its pictures were made into arrays, for predict to prepare a new picture the same way ("mnist", or
    # for a folder of pictures e.g. "resized to 28x28, grey"); notes on what was skipped when reading it.
    preparation: str = "mnist"
    notes: tuple = ()

    @property
    def is_full(self):
        return self.dataset == "mnist" and len(self.x_train) == 60000 and len(self.x_test) == 10000

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        """One picture's shape: (28, 28) for MNIST, (height, width, 3) for colour pictures."""
        return tuple(self.x_train.shape[1:])

    def as_keras(self):
        """The tutorial's shape: `(train_images, train_labels), (test_images, test_labels)`."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


def _as_uint8(array, name, source, low, high):
    array = np.asarray(array)
    if array.dtype.kind not in "uif" or array.size == 0:
        raise UserError(f"{source}: {name} holds {array.dtype} data, expected numbers")
    if array.min() < low or array.max() > high or (array.dtype.kind == "f" and not np.all(array == np.round(array))):
        raise UserError(f"{source}: {name} has values outside the whole numbers {low}..{high}; is this really MNIST?")
    return array.astype(np.uint8, copy=False)


def validated(x_train, y_train, x_test, y_test, *, source):
    """Check shapes, dtypes and value ranges, and return an `Dataset` of uint8 arrays."""
    arrays = {}
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"{source}: x_{split} has shape {images.shape}, expected (n, 28, 28)")
        if labels.shape != (len(images),):
            raise UserError(f"{source}: y_{split} has shape {labels.shape}, expected ({len(images)},) to match x_{split}")
        arrays[f"x_{split}"] = _as_uint8(images, f"x_{split}", source, 0, 255)
        arrays[f"y_{split}"] = _as_uint8(labels, f"y_{split}", source, 0, NUM_CLASSES - 1)
    return Dataset(**arrays, source=source)


def prepare_images(images, input_shape=None):
    """The tutorial's step: flatten each 28x28 image to 784 numbers and scale 0..255 to 0..1 as float32.

    `input_shape`, one image's shape as a model takes it, reshapes them for that model instead: (784,) is the
    tutorial's flat row, (28, 28, 1) a convnet's picture with its one channel.
    """
    images = np.asarray(images)
    shape = tuple(input_shape) if input_shape is not None else (-1,)
    return images.reshape((len(images), *shape)).astype("float32") / 255


def one_hot(labels, num_classes=NUM_CLASSES):
    """Labels as one-hot rows, what `keras.utils.to_categorical` returns (without importing keras)."""
    return np.eye(num_classes, dtype="float32")[np.asarray(labels, dtype=np.int64)]
