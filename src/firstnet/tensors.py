"""The tutorial's tensor vocabulary (scalar, vector, matrix, then real data of rank 2 to 5) shown with real MNIST arrays."""

import dataclasses
import pathlib
import textwrap
import types

import numpy as np

from firstnet import files, plots
from firstnet.data import Dataset, load_dataset
from firstnet.errors import UserError

IMAGE_SIZE = 28


@dataclasses.dataclass(frozen=True)
class Example:
    """One named tensor: what the tutorial calls it, the Python that makes it, what its axes mean, and the array."""

    name: str
    expression: str
    axes: str
    tensor: np.ndarray

    @property
    def ndim(self):
        return self.tensor.ndim

    @property
    def shape(self):
        return self.tensor.shape

    @property
    def dtype(self):
        return self.tensor.dtype


def examples(data, clip_count=4, seed=0):
    """The tutorial's vocabulary and its real-world table, each a real MNIST tensor, keyed by a short name.

    The big tensors are views of `data.x_train` (a reshape, or a new axis of size 1), not copies: the same
    60,000 x 784 bytes read with different axes. Only the video clips are new arrays, and there are few of them.
    """
    train_images, train_labels = training_arrays(data)
    samples = len(train_images)
    clips = moving_digit_clips(train_images, clip_count, seed=seed)
    found = [
        Example("scalar", "train_labels[0]", "()", np.asarray(train_labels[0])),
        Example("vector", "train_images[0][14]", "(pixels,)", train_images[0][14]),
        Example("vector", "train_images[0].reshape(784)", "(pixels,)", train_images[0].reshape(IMAGE_SIZE * IMAGE_SIZE)),
        Example("matrix", "train_images[0]", "(rows, columns)", train_images[0]),
        Example("vector data", f"train_images.reshape({samples}, 784)", "(samples, features)",
                train_images.reshape(samples, IMAGE_SIZE * IMAGE_SIZE)),
        Example("timeseries", "train_images  # row t is timestep t", "(samples, timesteps, features)", train_images),
        Example("images", "train_images[..., np.newaxis]", "(samples, height, width, channels)",
                train_images[..., np.newaxis]),
        Example("images, channels first", "train_images[:, np.newaxis]", "(samples, channels, height, width)",
                train_images[:, np.newaxis]),
        Example("video", f"moving_digit_clips(train_images, {clip_count})", "(samples, frames, height, width, channels)",
                clips),
    ]
    keys = ["scalar", "vector_row", "vector_image", "matrix", "vector_data", "timeseries", "images",
            "images_channels_first", "video"]
    return dict(zip(keys, found))


def training_arrays(data):
    """The training images and labels in `data`: a `Dataset`, what `data.load_data()` returns, or the module itself.

    `from firstnet import data` puts the module in scope under the name the README's `examples(data)` uses, so
    the module stands for the default MNIST (`load_mnist()`).
    """
    if isinstance(data, types.ModuleType) and data.__name__ == "firstnet.data":
        data = load_dataset()
    if isinstance(data, Dataset):
        if data.x_train.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            shape = "x".join(str(side) for side in data.x_train.shape[1:3])
            colour = "colour" if data.x_train.ndim == 4 else "grey"
            raise UserError(f"tensors shows the tutorial's vocabulary on 28x28 grey pictures (MNIST, Fashion-MNIST, "
                            f"or a folder of such pictures); {data.source} holds {shape} {colour} pictures. Try "
                            f"`firstnet explore` for its shapes")
        return data.x_train, data.y_train
    try:
        (train_images, train_labels), (_, _) = data
    except (TypeError, ValueError):
        raise TypeError(f"examples() needs MNIST: the object from data.load_mnist(), the ((x_train, y_train), "
                        f"(x_test, y_test)) that data.load_data() returns, or the firstnet.data module; got "
                        f"{type(data).__name__}") from None
    return np.asarray(train_images), np.asarray(train_labels)


VOCABULARY = ("scalar", "vector_row", "vector_image", "matrix")


def clip_sources(total, count, seed=0):
    """Which images the clips use: `count` distinct indices below `total`, the same for the same seed."""
    if not 1 <= count <= total:
        raise ValueError(f"count must be between 1 and {total} (the number of images), got {count}")
    return np.random.default_rng(seed).choice(total, size=count, replace=False)


def moving_digit_clips(images, count, frames=10, size=64, seed=0):
    """Short videos: real digits sliding across a larger black canvas, as uint8 (count, frames, size, size, 1).

    Each clip pastes one whole 28x28 digit at a new place in every frame, so its ink is never cut or blended:
    every frame holds exactly the digit's pixels. The digit crosses the canvas from one side to the other, moving
    at least one pixel a frame, on a slanted line; the seed picks the digits, the direction and the slant.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"images must have shape (n, 28, 28), got {images.shape}")
    if frames < 2:
        raise ValueError(f"a video needs at least 2 frames, got {frames}")
    travel = size - IMAGE_SIZE
    if travel < frames - 1:
        raise ValueError(f"size {size} leaves room for {travel + 1} positions; use size >= {IMAGE_SIZE + frames - 1}")
    rng = np.random.default_rng(seed)
    chosen = clip_sources(len(images), count, seed)
    clips = np.zeros((count, frames, size, size, 1), dtype=images.dtype)
    for clip, index in enumerate(chosen):
        columns = np.round(np.linspace(0, travel, frames)).astype(int)
        if rng.random() < 0.5:
            columns = columns[::-1]
        top, bottom = rng.integers(0, travel + 1, size=2)
        rows = np.round(np.linspace(top, bottom, frames)).astype(int)
        for frame, (row, column) in enumerate(zip(rows, columns)):
            clips[clip, frame, row : row + IMAGE_SIZE, column : column + IMAGE_SIZE, 0] = images[index]
    return clips


def glimpse(tensor, width=8):
    """A few values of a tensor, where its ink starts, written as the indexing that reads them: `[0, 5, 12:20] = [...]`.

    The first values of an MNIST tensor are paper (zeros), which says little; starting at the first ink shows numbers.
    The values run along the innermost axis longer than 1, so a channel axis of size 1 does not hide the row.
    """
    tensor = np.asarray(tensor)
    if tensor.ndim == 0:
        return str(tensor.item())
    nonzero = np.flatnonzero(tensor)
    position = [int(index) for index in np.unravel_index(nonzero[0] if len(nonzero) else 0, tensor.shape)]
    axis = max([axis for axis, length in enumerate(tensor.shape) if length > 1], default=tensor.ndim - 1)
    length = tensor.shape[axis]
    start = max(0, min(position[axis] - 2, length - width))
    stop = min(length, start + width)
    index = tuple(slice(start, stop) if number == axis else position[number] for number in range(tensor.ndim))
    written = ", ".join(f"{start}:{stop}" if number == axis else str(position[number]) for number in range(tensor.ndim))
    values = " ".join(str(value) for value in tensor[index])
    return f"[{written}] = [{values}]"


def format_table(found):
    """The examples as two text tables: the vocabulary, then the tutorial's real-world tensor data."""
    sections = [("The vocabulary: scalar, vector, matrix (one label, one image)", VOCABULARY),
                (f"Real-world tensor data, built from MNIST's {len(found['vector_data'].tensor):,} training digits",
                 [key for key in found if key not in VOCABULARY])]
    lines = []
    for title, keys in sections:
        lines += ["", title] if lines else [title]
        for key in keys:
            # One tensor a block of short lines, so that the table fits a terminal's 80 columns.
            example = found[key]
            lines += ["", f"{example.name}: {example.expression}",
                      f"    ndim {example.ndim}, shape {example.shape}, dtype {example.dtype}",
                      f"    axes {example.axes}",
                      f"    glimpse {glimpse(example.tensor)}"]
    return "\n".join(textwrap.fill(line, width=80, subsequent_indent="        ") if len(line) > 80 else line
                     for line in lines)


def _pyplot():
    return plots._pyplot()


def vocabulary_figure(found):
    """Scalar, vector and matrix drawn: one label, one row of pixels, the whole image flattened, and the image itself."""
    plt = _pyplot()
    scalar, row, flat, matrix = (found[key] for key in VOCABULARY)
    figure = plt.figure(figsize=(12, 7.5))
    grid = figure.add_gridspec(3, 2, height_ratios=[3, 1, 1], width_ratios=[1, 1.3])

    axes = figure.add_subplot(grid[0, 0])
    axes.text(0.5, 0.5, str(scalar.tensor.item()), fontsize=80, ha="center", va="center")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"scalar: {scalar.expression}\nndim {scalar.ndim}, shape {scalar.shape}, {scalar.dtype}: one number")

    axes = figure.add_subplot(grid[0, 1])
    shown = axes.imshow(matrix.tensor, cmap="binary", vmin=0, vmax=255)
    axes.add_patch(plt.Rectangle((-0.5, 13.5), 28, 1, fill=False, edgecolor="tab:red", linewidth=2))
    axes.set_title(f"matrix: {matrix.expression}\nndim {matrix.ndim}, shape {matrix.shape}, {matrix.dtype} "
                   "(red: row 14, the vector below)")
    axes.set_xlabel("column (axis 1)")
    axes.set_ylabel("row (axis 0)")
    figure.colorbar(shown, ax=axes, fraction=0.046, label="ink, 0..255")

    axes = figure.add_subplot(grid[1, :])
    axes.imshow(row.tensor[np.newaxis], cmap="binary", vmin=0, vmax=255, aspect="auto")
    for column, value in enumerate(row.tensor):
        axes.text(column, 0, str(value), ha="center", va="center", fontsize=7, color="white" if value > 127 else "black")
    axes.set_yticks([])
    axes.set_xlabel("position in the vector (column of the image)")
    axes.set_title(f"vector: {row.expression}, ndim {row.ndim}, shape {row.shape}: one row of pixels")

    axes = figure.add_subplot(grid[2, :])
    axes.imshow(flat.tensor[np.newaxis], cmap="binary", vmin=0, vmax=255, aspect="auto", interpolation="nearest")
    axes.set_xticks(range(0, flat.tensor.size + 1, 28 * 4))
    axes.set_yticks([])
    axes.set_xlabel("position in the vector (row 0 fills 0..27, row 1 fills 28..55, ...)")
    axes.set_title(f"vector: {flat.expression}, ndim {flat.ndim}, shape {flat.shape}: "
                   "the whole image as one long row, what the network reads")
    figure.tight_layout()
    return figure


def images_figure(found, rows=4, columns=8):
    """The first digits of the image tensor, each one sample along axis 0."""
    images = found["images"].tensor
    count = rows * columns
    return plots.grid_figure(images[:count, :, :, 0], [f"images[{index}]" for index in range(count)], rows, columns,
                             suptitle=f"an image tensor, shape {images.shape} (samples, height, width, channels): "
                                      f"the first {count} samples")


def filmstrip_figure(clips):
    """Every clip as a row of frames: a video tensor (samples, frames, height, width, channels) laid out flat."""
    plt = _pyplot()
    count, frames = clips.shape[:2]
    figure, axes_grid = plt.subplots(count, frames, figsize=(1.3 * frames, 1.45 * count + 0.6), squeeze=False)
    for clip in range(count):
        for frame in range(frames):
            axes = axes_grid[clip, frame]
            axes.imshow(clips[clip, frame, :, :, 0], cmap="binary", vmin=0, vmax=255)
            axes.set_xticks([])
            axes.set_yticks([])
            if clip == 0:
                axes.set_title(f"frame {frame}", fontsize=9)
            if frame == 0:
                axes.set_ylabel(f"clip {clip}", fontsize=9)
    figure.suptitle(f"a video tensor, shape {clips.shape} (samples, frames, height, width, channels): "
                    "rows are samples, columns are frames")
    figure.tight_layout()
    return figure


def save_gif(clip, path, scale=3, milliseconds_per_frame=150):
    """One clip (frames, height, width, 1) as an animated GIF, ink dark on white paper like the figures, atomically."""
    from PIL import Image

    frames = [Image.fromarray(255 - np.asarray(frame[:, :, 0], dtype=np.uint8)) for frame in clip]
    frames = [frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST) for frame in frames]
    with files.atomic_path(path) as temporary:
        frames[0].save(temporary, format="GIF", save_all=True, append_images=frames[1:],
                       duration=milliseconds_per_frame, loop=0)


def figure_folder(out_dir):
    """Create the folder for the figures, or say in one line why it cannot be one (the CLI checks this first)."""
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: is a file; give a folder for the figures (it is created if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out_dir}: cannot create this folder for the figures ({error.strerror}); choose another") from error
    return out_dir


def save_figures(found, out_dir):
    """Write the tensor figures into `out_dir` and return the paths written."""
    out_dir = figure_folder(out_dir)
    clips = found["video"].tensor
    written = []
    for name, figure in (("vocabulary.png", vocabulary_figure(found)), ("images.png", images_figure(found)),
                         ("video_filmstrip.png", filmstrip_figure(clips))):
        plots.save_figure(figure, out_dir / name)
        written.append(out_dir / name)
    save_gif(clips[0], out_dir / "video.gif")
    written.append(out_dir / "video.gif")
    return written
