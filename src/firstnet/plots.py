"""Pictures of the lesson: a digit as the tutorial's imshow shows it, a grid, learning curves, a confusion matrix."""

import numpy as np

from firstnet import files

SHADES = " ░▒▓█"
IMAGE_SIDE = 28
NO_CURVES_YET = "stopped before the first epoch ended: no curves yet"


def _pyplot():
    # Figures are files here, never windows: Agg works on a server, in CI and over ssh.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def digit_figure(image, title=None):
    """The tutorial's `plt.imshow(digit, cmap=plt.cm.binary)`, with the pixel grid labelled."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(4, 4))
    shown = axes.imshow(image, cmap=plt.cm.binary, vmin=0, vmax=255)
    axes.set_title(title or "a digit")
    axes.set_xlabel("column (pixel)")
    axes.set_ylabel("row (pixel)")
    figure.colorbar(shown, ax=axes, fraction=0.046, label="ink, 0..255")
    return figure


def grid_figure(images, titles, rows, columns, suptitle=None):
    """Several digits at once, each titled (for example with its label)."""
    plt = _pyplot()
    figure, axes_grid = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if index < len(images):
            axes.imshow(images[index], cmap=plt.cm.binary, vmin=0, vmax=255)
            axes.set_title(titles[index], fontsize=9)
    if suptitle:
        title = figure.suptitle(suptitle)
        # A grid of one or two pictures is narrower than its title would be: widen the figure until it fits.
        needed_inches = title.get_window_extent(figure.canvas.get_renderer()).width / figure.dpi + 0.3
        if needed_inches > figure.get_figwidth():
            figure.set_figwidth(needed_inches)
    figure.tight_layout()
    return figure


def curves_figure(history):
    """Loss and accuracy per epoch, training and (when there is one) validation."""
    plt = _pyplot()
    from matplotlib import ticker

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4), layout="tight")
    if not history.get("loss") and not history.get("accuracy"):
        # A run stopped by Ctrl-C during its first epoch: an empty pair of axes would look like a broken figure.
        for axes in (loss_axes, accuracy_axes):
            axes.axis("off")
        figure.text(0.5, 0.5, NO_CURVES_YET, ha="center", va="center", fontsize=14)
        return figure
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, style in (("", "o-"), ("val_", "s--")):
            values = history.get(prefix + metric)
            if values:
                epochs = range(1, len(values) + 1)
                axes.plot(epochs, values, style, label=("validation " if prefix else "training ") + metric)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # Epochs are whole numbers.
        axes.set_ylabel(metric)
        axes.set_title(f"{metric} per epoch")
        axes.grid(alpha=0.3)
        if axes.get_lines():  # A run stopped during its first epoch has no curve yet; a legend would warn.
            axes.legend()
    return figure


def confusion_figure(confusion, title="test digits: true label vs prediction", class_names=None):
    """Rows are the true digits, columns the predictions; the diagonal is what the network got right.

    `confusion` may also be {"matrix": ..., "class_names": [...]}, as a run of named classes saves it: the rows and
    columns are then labelled by name.
    """
    plt = _pyplot()
    from matplotlib import layout_engine

    if isinstance(confusion, dict):
        confusion, class_names = confusion["matrix"], confusion.get("class_names")
    confusion = np.asarray(confusion)
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    shown = axes.imshow(confusion, cmap="Blues")
    figure.colorbar(shown, ax=axes, label="number of test digits")
    threshold = confusion.max() / 2
    for true in range(confusion.shape[0]):
        for predicted in range(confusion.shape[1]):
            count = confusion[true, predicted]
            axes.text(predicted, true, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > threshold else "black")
    axes.set_xticks(range(confusion.shape[1]))
    axes.set_yticks(range(confusion.shape[0]))
    named = class_names is not None and list(class_names) != [str(digit) for digit in range(10)]
    if named:
        axes.set_xticklabels(class_names, rotation=45, ha="right", fontsize=7)
        axes.set_yticklabels(class_names, fontsize=7)
        figure.subplots_adjust(left=0.2, bottom=0.2)
    axes.set_xlabel("predicted class" if named else "predicted digit")
    axes.set_ylabel("true class" if named else "true digit")
    axes.set_title(title)
    # Margins set by hand: a layout pass would draw the 100 counts once more just to measure them (a third of
    # the time this figure takes), and `firstnet train` waits for this figure.
    figure.subplots_adjust(left=0.2 if named else 0.07, right=1.0, bottom=0.2 if named else 0.09, top=0.94)
    figure.set_layout_engine(layout_engine.PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))
    return figure


def text_sized(image):
    """A picture as a terminal draws it: grey (a colour picture's mean over its channels) and 28x28.

    A picture of another size is sampled at 28 evenly spaced rows and columns (nearest pixel), so that a
    64-pixel photo still fits 80 columns; MNIST's own digits pass unchanged.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    if image.shape != (IMAGE_SIDE, IMAGE_SIDE):
        rows = np.linspace(0, image.shape[0] - 1, IMAGE_SIDE).round().astype(int)
        columns = np.linspace(0, image.shape[1] - 1, IMAGE_SIDE).round().astype(int)
        image = image[np.ix_(rows, columns)]
    return image


def unicode_digit(image, pixel_width=2):
    """A digit (or any picture, made 28x28 grey) as 28 lines of shaded blocks (two characters a pixel look
    square), for a terminal."""
    image = text_sized(image)
    levels = np.clip((image / 256 * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return "\n".join("".join(SHADES[level] * pixel_width for level in row).rstrip() for row in levels)


# One character holds 2x2 pixels: bit 1 the top left, 2 the top right, 4 the bottom left, 8 the bottom right.
QUADRANTS = " ▘▝▀▖▌▞▛▗▚▐▜▄▙▟█"
COMPACT_WIDTH = 14  # Characters a digit takes in a grid: 28 pixels, two a character.


def compact_digit(image):
    """A 28x28 digit as 14 lines of 14 quarter-block characters, ink where `unicode_digit` shows any."""
    ink = text_sized(image) >= 256 / len(SHADES)
    quarters = ink.reshape(IMAGE_SIDE // 2, 2, IMAGE_SIDE // 2, 2)
    codes = quarters[:, 0, :, 0] * 1 + quarters[:, 0, :, 1] * 2 + quarters[:, 1, :, 0] * 4 + quarters[:, 1, :, 1] * 8
    return "\n".join("".join(QUADRANTS[code] for code in row).rstrip() for row in codes)


def unicode_grid(images, titles, columns, width=80):
    """Digits side by side in rows of `columns`, each titled, as text no wider than `width`.

    Each digit is drawn in quarter blocks, 14 characters wide, so that five fit across a terminal's 80
    columns; a row of more digits than fit continues on the next line. Titles are cut to the digit's width.
    """
    gap = 2
    across = max(1, min(columns, (width + gap) // (COMPACT_WIDTH + gap)))
    blocks = []
    for row_start in range(0, len(images), columns):
        row_end = min(row_start + columns, len(images))
        for start in range(row_start, row_end, across):
            stop = min(start + across, row_end)
            chunk = [compact_digit(image).split("\n") for image in images[start:stop]]
            heads = [f"{title[:COMPACT_WIDTH]:<{COMPACT_WIDTH}}" for title in titles[start:stop]]
            lines = [(" " * gap).join(heads).rstrip()]
            for line in range(len(chunk[0])):
                lines.append((" " * gap).join(f"{digit[line]:<{COMPACT_WIDTH}}" for digit in chunk).rstrip())
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def save_figure(figure, path, dpi=110):
    """Save a matplotlib figure as PNG, trimmed to what it shows unless the figure lays itself out."""
    plt = _pyplot()
    with files.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches=None if figure.get_layout_engine() else "tight")
    plt.close(figure)
