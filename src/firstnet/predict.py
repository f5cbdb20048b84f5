"""Your own digit, prepared the way MNIST's were made, and the network's answer with its ten probabilities."""

import io
import pathlib

import numpy as np

from firstnet.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_SIDE = 4096
DIGIT_BOX = 20  # MNIST fitted each digit into a 20x20 box, then centred its mass in a 28x28 field.
FIELD = 28


def open_image(source, name=None):
    """Open an image file or bytes with Pillow, refusing non-images and anything larger than 4096x4096.

    The size is read from the header before any pixel is decoded, so a small file that would decompress into
    a huge image (a decompression bomb) is refused without using the memory.
    """
    from PIL import Image

    name = name or str(source)
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        image = Image.open(stream)
    except FileNotFoundError as error:
        raise UserError(f"{name}: no such file") from error
    except Exception as error:
        raise UserError(f"{name}: not an image Pillow can read; use a PNG, JPEG or BMP file") from error
    width, height = image.size
    if width > MAX_SIDE or height > MAX_SIDE:
        raise UserError(f"{name}: {width}x{height} pixels is too large; at most {MAX_SIDE}x{MAX_SIDE}, a photo of one digit needs far less")
    try:
        image.load()
    except Exception as error:
        raise UserError(f"{name}: the image data is broken ({error}); save the picture again") from error
    return image


def to_grey(image):
    """Greyscale 0..255 as float; transparent pixels count as white paper."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def prepare_image(image):
    """Turn any picture of one digit into a 28x28 uint8 array that looks like an MNIST digit.

    MNIST digits are light ink (255) on black (0), fitted into 20x20 keeping their aspect ratio and placed so that
    their centre of mass is the centre of the 28x28 field. Photos are the opposite (dark ink on light paper), so we
    invert them, remove the paper's grey level, crop to the ink and repeat MNIST's own steps.
    """
    from PIL import Image

    grey = to_grey(image) if isinstance(image, Image.Image) else np.asarray(image, dtype=np.float64)
    if grey.ndim != 2:
        raise UserError(f"expected a greyscale image, got an array of shape {grey.shape}")
    if np.median(_border(grey)) > 127:
        grey = 255.0 - grey  # Dark ink on light paper: make the ink the bright part, as in MNIST.
    # The paper is rarely pure black after inversion (shadows, grey paper): subtract its level and stretch.
    ink = np.clip(grey - np.median(_border(grey)), 0, None)
    if ink.max() < 32:
        raise UserError("found no digit in the image: it looks blank; draw or photograph a dark digit on light paper")
    ink = ink * (255.0 / ink.max())
    ink[ink < 0.15 * 255] = 0  # Faint noise far from the stroke would move the crop and the centre of mass.
    rows, columns = np.nonzero(ink)
    cropped = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]

    height, width = cropped.shape
    scale = DIGIT_BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(cropped.astype(np.float32)).resize(new_size, Image.LANCZOS))
    resized = np.clip(resized, 0, 255)

    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    top, left = (FIELD - new_size[1]) // 2, (FIELD - new_size[0]) // 2
    field[top : top + new_size[1], left : left + new_size[0]] = resized
    return center_of_mass_shift(field).round().astype(np.uint8)


def _border(grey):
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def center_of_mass_shift(field):
    """Move the image by whole pixels so its centre of mass lands on the centre, as LeCun did for MNIST."""
    total = field.sum()
    if total == 0:
        return field
    rows, columns = np.indices(field.shape)
    center = (np.asarray(field.shape) - 1) / 2
    shift_rows = int(round(center[0] - (rows * field).sum() / total))
    shift_columns = int(round(center[1] - (columns * field).sum() / total))
    shifted = np.zeros_like(field)
    source = field[max(0, -shift_rows) : field.shape[0] - max(0, shift_rows), max(0, -shift_columns) : field.shape[1] - max(0, shift_columns)]
    shifted[max(0, shift_rows) : max(0, shift_rows) + source.shape[0], max(0, shift_columns) : max(0, shift_columns) + source.shape[1]] = source
    return shifted


def image_files(paths):
    """Expand folders into the image files inside them, sorted; complain about paths that are neither."""
    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            found = sorted(file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"{path}: no image files (PNG, JPEG, BMP) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return files


def predict_digits(model, prepared):
    """Probabilities for a batch of prepared 28x28 digits: an (n, 10) array whose rows sum to 1."""
    from firstnet import data as mnist_data

    return np.asarray(model.predict(mnist_data.prepare_images(np.asarray(prepared)), verbose=0))


def predict_files(model, paths):
    """Prepare and classify image files; return one dict per file with the digit, probabilities and input."""
    files = image_files(paths)
    prepared = np.stack([prepare_image(open_image(file)) for file in files])
    probabilities = predict_digits(model, prepared)
    return [
        {"file": str(file), "digit": int(row.argmax()), "probabilities": [float(p) for p in row], "input": image}
        for file, row, image in zip(files, probabilities, prepared)
    ]
