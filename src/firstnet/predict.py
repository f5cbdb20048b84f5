"""The network's answer for your own pictures: each prepared as its run's training pictures were, with the probabilities."""

import functools

import numpy as np

from firstnet import images
from firstnet.data import folders, prepare_images


def predict_digits(model, prepared):
    """Probabilities for a batch of prepared pictures (28x28 digits for MNIST): an (n, classes) array, rows summing to 1."""
    prepared = np.asarray(prepared)
    return np.asarray(model.predict(prepare_images(prepared, model.inputs[0].shape[1:]), verbose=0))


def picture_shape(run_metrics):
    """The shape a run's pictures were made ((height, width) or (height, width, 3)), or None for MNIST's digits.

    A digit set is prepared the MNIST way (invert, crop to the ink, centre of mass); any other set the way its
    training pictures were made: resized to their size, in grey or colour (data/folders.py).
    """
    return folders.shape_of((run_metrics or {}).get("preparation"))


def is_digit_run(run_metrics):
    """True for a run on MNIST's digits, or one saved before runs recorded their data: 28x28 digits prepared the MNIST
    way, classes 0 to 9. Explaining, fooling and "not a digit" are built on those (the command line and the page)."""
    run_metrics = run_metrics or {}
    names = run_metrics.get("class_names")
    return (run_metrics.get("dataset") in (None, "mnist") and picture_shape(run_metrics) is None
            and (names is None or [str(name) for name in names] == [str(digit) for digit in range(10)]))


def paper_removed(run_metrics):
    """Whether the run's pictures had their paper taken away (data/folders.py); a new picture is made the same way."""
    return folders.removes_paper((run_metrics or {}).get("preparation"))


def prepare_file(path, shape=None, paper=False):
    """`images.prepare_file` for a file: the MNIST way, or with `shape` the set's own preparation (data/folders.py)."""
    if shape is None:
        return images.prepare_file(path)
    return images.prepare_file(path, functools.partial(folders.prepare_picture, shape=shape, paper_removed=paper))


def class_names_of(run_metrics, count):
    """The run's class names (label i is names[i]); the digits for MNIST and for runs saved before names existed."""
    names = (run_metrics or {}).get("class_names")
    return [str(name) for name in names] if names and len(names) == count else [str(label) for label in range(count)]


def predict_files(model, paths, run_metrics=None):
    """Prepare and classify image files; return one dict per file with the class, its name, probabilities and input."""
    files = images.image_files(paths)
    shape = picture_shape(run_metrics)
    paper = paper_removed(run_metrics)
    prepared = np.stack([prepare_file(file, shape, paper) for file in files])
    probabilities = predict_digits(model, prepared)
    names = class_names_of(run_metrics, probabilities.shape[1])
    return [
        {"file": str(file), "digit": int(row.argmax()), "label": names[int(row.argmax())],
         "probabilities": [float(p) for p in row], "input": image}
        for file, row, image in zip(files, probabilities, prepared)
    ]
