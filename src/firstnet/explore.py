"""The tutorial's "explore the data" step: the same expressions, evaluated on the real arrays, as a table."""

import numpy as np

from firstnet.errors import UserError


def explore(data):
    """Return (expression, value) rows; the expressions are the tutorial's, with its variable names."""
    train_images, train_labels, test_images = data.x_train, data.y_train, data.x_test
    counts = np.bincount(train_labels, minlength=10)
    return [
        ("len(train_labels)", str(len(train_labels))),
        ("train_images.shape", str(train_images.shape)),
        ("train_images[0].shape", str(train_images[0].shape)),
        ("train_images[0][0]", np.array2string(train_images[0][0], max_line_width=200)),
        ("train_images[0][14]", np.array2string(train_images[0][14], max_line_width=200)),
        ("test_images.shape", str(test_images.shape)),
        ("test_images[0].shape", str(test_images[0].shape)),
        ("train_images.dtype", str(train_images.dtype)),
        ("train_images.min(), train_images.max()", f"({train_images.min()}, {train_images.max()})"),
        ("train_labels[:10]", np.array2string(train_labels[:10])),
        ("labels counted (train)", "  ".join(f"{digit}:{count}" for digit, count in enumerate(counts))),
        ("data source", data.source),
    ]


def format_rows(rows):
    width = max(len(expression) for expression, _ in rows)
    return "\n".join(f"{expression:<{width}}  {value}" for expression, value in rows)


def pixel_values(data, index, split="train"):
    """One image's 28x28 numbers as text, the tensor the network actually reads."""
    images = data.x_train if split == "train" else data.x_test
    labels = data.y_train if split == "train" else data.y_test
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: out of range; the {split} set has images 0 to {len(images) - 1}")
    rows = "\n".join(" ".join(f"{value:>3}" for value in row) for row in images[index])
    return f"{split}_images[{index}] (label {labels[index]}), 28 rows of 28 pixels, 0 = paper, 255 = ink:\n{rows}"
