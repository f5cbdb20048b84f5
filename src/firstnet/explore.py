"""The tutorial's "explore the data" and "display a digit" steps: its expressions on the real arrays, its imshow."""

import numpy as np

from firstnet import plots
from firstnet.names import shown
from firstnet.errors import UserError


def explore(data):
    """Return (expression, value) rows; the expressions are the tutorial's, with its variable names."""
    train_images, train_labels, test_images = data.x_train, data.y_train, data.x_test
    counts = np.bincount(train_labels, minlength=data.num_classes)
    # A colour picture's first row is a row of (red, green, blue) triples: its red values read like a grey row.
    channel = "[:, 0]" if train_images.ndim == 4 else ""
    row = train_images.shape[1] // 2
    return [
        ("len(train_labels)", str(len(train_labels))),
        ("train_images.shape", str(train_images.shape)),
        ("train_images[0].shape", str(train_images[0].shape)),
        (f"train_images[0][0]{channel}", np.array2string(train_images[0][0][..., 0] if channel else train_images[0][0],
                                                         max_line_width=200)),
        (f"train_images[0][{row}]{channel}", np.array2string(train_images[0][row][..., 0] if channel
                                                             else train_images[0][row], max_line_width=200)),
        ("test_images.shape", str(test_images.shape)),
        ("test_images[0].shape", str(test_images[0].shape)),
        ("train_images.dtype", str(train_images.dtype)),
        ("train_images.min(), train_images.max()", f"({train_images.min()}, {train_images.max()})"),
        ("train_labels[:10]", np.array2string(train_labels[:10])),
        ("labels counted (train)", "  ".join(f"{name}:{count}" for name, count in zip(class_names(data), counts))),
        ("data source", data.source),
    ]


def class_names(data):
    """The set's class names by label (MNIST's are its digits), for tables that count or title pictures."""
    # Shown safely (names.py): a folder named with a right-to-left override must not print as another name.
    names = [shown(name) for name in getattr(data, "class_names", None) or []]
    return names if len(names) >= data.num_classes else [str(label) for label in range(data.num_classes)]


def format_rows(rows):
    width = max(len(expression) for expression, _ in rows)
    return "\n".join(f"{expression:<{width}}  {value}" for expression, value in rows)


def pixel_values(data, index, split="train"):
    """One image's 28x28 numbers as text, the tensor the network actually reads."""
    images = data.x_train if split == "train" else data.x_test
    labels = data.y_train if split == "train" else data.y_test
    if not 0 <= index < len(images):
        raise UserError(f"--index {index}: out of range; the {split} set has images 0 to {len(images) - 1}")
    image = images[index]
    if image.ndim == 3:  # A colour picture: its red channel, one number a pixel like a grey picture's.
        image, what = image[..., 0], "red channel, 0 = none, 255 = full"
    else:
        what = "0 = paper, 255 = ink" if data.dataset in ("mnist", "fashion_mnist") else "0 = black, 255 = white"
    rows = "\n".join(" ".join(f"{value:>3}" for value in row) for row in image)
    name = class_names(data)[labels[index]]
    return (f"{split}_images[{index}] (label {labels[index]}{'' if name == str(labels[index]) else ', ' + name}), "
            f"{image.shape[0]} rows of {image.shape[1]} pixels, {what}:\n{rows}")


def show(data, index, split="train", grid=(1, 1), out=None):
    """The tutorial's `plt.imshow(train_images[4])`: pictures from `index` on, titled with their labels.

    With `out` (a .png path) the picture is saved there; otherwise it is drawn as text for a terminal. Returns
    what to print. `grid` is (rows, columns) for several pictures at once.
    """
    names = class_names(data)
    images, labels = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    rows, columns = grid
    count = rows * columns
    if not 0 <= index <= len(images) - count:
        raise UserError(f"index {index}: out of range; the {split} set has {len(images)} images, so use 0 to "
                        f"{len(images) - count}")
    chosen = images[index : index + count]
    # A label's name where it has one that is not the label itself ("3: dress"); MNIST's digits are their names.
    named = [f"{label}: {names[label]}" if names[label] != str(label) else str(label)
             for label in labels[index : index + count]]
    if out:
        if count == 1:
            figure = plots.digit_figure(chosen[0], title=f"{split}_images[{index}], label {named[0]}")
        else:
            figure = plots.grid_figure(chosen, [f"#{index + i}: {named[i]}" for i in range(count)], rows, columns,
                                       suptitle=f"{split} digits {index}..{index + count - 1}")
        plots.save_figure(figure, out)
        return f"saved {out}"
    if count == 1:
        return f"{split}_images[{index}], label {named[0]}\n{plots.unicode_digit(chosen[0])}"
    # Short titles (index: label) under one heading, so that five digits fit across 80 columns.
    return (f"{split}_images[{index}..{index + count - 1}], each titled index: label\n\n"
            + plots.unicode_grid(chosen, [f"{index + i}: {named[i]}" for i in range(count)], columns))
