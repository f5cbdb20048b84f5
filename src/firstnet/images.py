"""Pictures as the network reads them: open a file safely, make it grey, and prepare one digit the MNIST way."""

import io
import pathlib
import sys
import warnings

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from firstnet.errors import UserError, first_line
from firstnet.files import files_inside, links_note

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# The picture formats firstnet reads, on the command line and on the page alike. Pillow knows dozens more, some of
# them handed to other programs (EPS to Ghostscript): a picture of a digit needs none of them.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
FORMATS_SAID = "a PNG, JPEG, BMP, GIF or WebP picture"
MAX_SIDE = 4096
DIGIT_BOX = 20  # MNIST fitted each digit into a 20x20 box, then centred its mass in a 28x28 field.
FIELD = 28
MNIST_STROKE_WIDTH = 2.5  # Measured with `stroke_width`: 95% of MNIST's test digits have wider strokes.
WORKING_SIDE = 1024  # Larger pictures are shrunk to this first; the digit ends up 20 pixels tall anyway.


def open_image(source, name=None, max_pixels=None, max_side=MAX_SIDE):
    """Open an image file or bytes with Pillow: one of IMAGE_FORMATS, at most 4096x4096 (`max_side`, `max_pixels`).

    The size is read from the header before any pixel is decoded, so a small file that would decompress into
    a huge image (a decompression bomb) is refused without using the memory. A JPEG larger than the working size
    is decoded at a reduced scale (its format allows that at no cost), so a phone photo never costs its full
    size. A phone photo is turned upright as its EXIF orientation says, the way a photo viewer shows it.
    """
    name = name or str(source)
    if isinstance(source, str):
        source = pathlib.Path(source)
    if isinstance(source, pathlib.Path) and source.is_symlink():
        raise UserError(f"{name}: is a link; firstnet reads pictures only, not links to them (copy the file instead)")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns about huge images while reading the header; the size check below refuses them anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=IMAGE_FORMATS)
    except FileNotFoundError as error:
        raise UserError(f"{name}: no such file") from error
    except Image.DecompressionBombError as error:
        raise UserError(f"{name}: far too large an image; at most {MAX_SIDE}x{MAX_SIDE} pixels") from error
    except Exception as error:
        raise UserError(f"{name}: not a picture firstnet reads; use {FORMATS_SAID}") from error
    width, height = image.size
    if width > max_side or height > max_side:
        raise UserError(f"{name}: {width}x{height} pixels is too large; at most {max_side}x{max_side}, a photo of one digit needs far less")
    if image.format == "JPEG" and max(width, height) > WORKING_SIDE:
        image.draft(image.mode, (WORKING_SIDE, WORKING_SIDE))
    if max_pixels is not None and image.size[0] * image.size[1] > max_pixels:
        raise UserError(f"{name}: {width}x{height} pixels is more than this server decodes for one picture "
                        f"({max_pixels / 1e6:.0f} million pixels); send a smaller one (a digit needs far less)")
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except Exception as error:
        raise UserError(f"{name}: the image data is broken ({first_line(error)}); save the picture again") from error


def to_grey(image):
    """Greyscale 0..255 as float; transparent pixels become paper that contrasts with the strokes.

    A drawing exported from a canvas is often strokes on a transparent background: black strokes need white
    paper behind them, white strokes black paper, or the digit would vanish.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        opaque = np.asarray(rgba.convert("L"))[np.asarray(rgba)[..., 3] > 127]
        paper_colour = (0, 0, 0, 255) if opaque.size and np.median(opaque) > 127 else (255, 255, 255, 255)
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, paper_colour), rgba)
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit and 32-bit greyscale (from scanners): Pillow's conversion to 8 bits clips instead of scaling.
        grey = np.asarray(image, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise UserError("the picture has pixels that are not numbers (NaN or infinity); save it as an ordinary "
                            "PNG or JPEG")
        brightest = grey.max()
        if brightest <= 255:
            return grey
        return grey / 257 if brightest <= 65535 else grey * (255 / brightest)  # 65535 / 257 = 255.
    if image.mode == "LAB":
        # Pillow cannot convert Lab to greyscale, but its first band, lightness, is the greyscale.
        return np.asarray(image.getchannel(0), dtype=np.float64)
    try:
        return np.asarray(image.convert("L"), dtype=np.float64)
    except (ValueError, OSError) as error:  # A mode Pillow reads but cannot turn into greyscale.
        raise UserError(f"the picture's colour mode {image.mode} cannot be turned into greyscale "
                        f"({first_line(error)}); save it as an ordinary PNG or JPEG") from error


def prepare_image(image):
    """Turn any picture of one digit into a 28x28 uint8 array that looks like an MNIST digit.

    MNIST digits are light ink (255) on black (0), fitted into 20x20 keeping their aspect ratio and placed so that
    their centre of mass is the centre of the 28x28 field. Photos are the opposite (dark ink on light paper), so we
    invert them, remove the paper's grey level, crop to the ink and repeat MNIST's own steps.
    """
    grey = to_grey(image) if isinstance(image, Image.Image) else np.asarray(image, dtype=np.float64)
    if grey.ndim != 2:
        raise UserError(f"expected a greyscale image, got an array of shape {grey.shape}")
    if max(grey.shape) > WORKING_SIDE:
        # A phone photo has millions of pixels and the result has 784: shrink first, so that finding the paper
        # and the ink takes a moment, not seconds and gigabytes.
        factor = WORKING_SIDE / max(grey.shape)
        size = (max(1, round(grey.shape[1] * factor)), max(1, round(grey.shape[0] * factor)))
        grey = np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, Image.BOX), dtype=np.float64)
    ink = ink_strength(grey)
    rows, columns = np.nonzero(ink)
    cropped = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    resized = fit_in_box(cropped, DIGIT_BOX)
    new_size = resized.shape[::-1]

    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    top, left = (FIELD - new_size[1]) // 2, (FIELD - new_size[0]) // 2
    field[top : top + new_size[1], left : left + new_size[0]] = resized
    return center_of_mass_shift(field).round().astype(np.uint8)


def fit_in_box(ink, box):
    """Scale the cropped ink so its long side is `box` pixels, keeping the aspect ratio and MNIST's stroke width.

    A pen line that is a few pixels wide in a big photo would shrink to a faint hair, unlike any MNIST digit,
    so thin strokes are first made bold enough to be about as wide as MNIST's after the shrink.
    """
    height, width = ink.shape
    if max(height, width) > 4 * box:
        # Shrink in two steps; the first, by averaging, keeps every stroke visible however thin it was.
        factor = 4 * box / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        ink = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, Image.BOX), dtype=np.float64)
        ink = _stretch_strokes(ink)
        height, width = ink.shape
    scale = box / max(height, width)
    missing_width = MNIST_STROKE_WIDTH / scale - stroke_width(ink > 0.15 * 255)
    if missing_width >= 2:
        size = 2 * int(round(missing_width / 2)) + 1  # A max filter of odd size k widens each stroke by k - 1.
        # Pad first: a stroke on the edge of the crop (all of a "1") must be able to grow outwards too.
        ink = np.pad(ink, size // 2)
        ink = np.asarray(Image.fromarray(ink.astype(np.float32)).filter(ImageFilter.MaxFilter(size)), dtype=np.float64)
        height, width = ink.shape
        scale = box / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(new_size, Image.BILINEAR), dtype=np.float64)
    return _stretch_strokes(np.clip(resized, 0, 255))  # Averaging pixels dims the strokes' cores; restore them.


def stroke_width(mask):
    """Average width of the strokes in pixels, about 2 x area / outline (a one-pixel line counts as 2)."""
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    outline = np.count_nonzero(mask & ~interior)
    return 2 * np.count_nonzero(mask) / max(outline, 1)


def _stretch_strokes(ink):
    # MNIST's strokes are saturated at their core: stretch so that the typical core of a stroke reaches 255.
    strokes = ink[ink >= 0.5 * ink.max()]
    return np.clip(ink * (255.0 / np.percentile(strokes, 90)), 0, 255)


def ink_strength(grey):
    """How much ink is at each pixel, 0 (paper) to 255 (full stroke), whatever the paper and the lighting.

    Raises UserError when there is no ink at all.
    """
    dark_ink = np.median(_border(grey)) > 127
    if dark_ink:
        grey = 255.0 - grey  # Dark ink on light paper: make the ink the bright part, as in MNIST.
    # The paper is rarely pure black after inversion (grey paper, shadows, a lamp on one side): subtract its
    # level at every pixel.
    paper = paper_level(grey)
    ink = np.clip(grey - paper, 0, None)
    if ink.max() < 32:
        raise UserError("found no digit in the image: it looks blank; draw or photograph a dark digit on light paper")
    if dark_ink:
        # Light falls on paper and ink alike, so the same ink looks darker where the page is brighter; what
        # stays constant is the share of the paper's light that the ink swallows.
        ink = ink / np.maximum(255.0 - paper, 32.0) * 255.0
    ink = _stretch_strokes(ink)
    # Faint noise far from the strokes would move the crop and the centre of mass, and a camera's grain leaves
    # single bright specks: keep only clear ink that touches other ink (a stroke, even one pixel thin, always
    # does), plus the faint rim right around it, which is how MNIST's anti-aliased edges look.
    strokes = ink >= 0.15 * 255
    strokes &= _neighbour_count(strokes) > 0
    if not strokes.any():
        raise UserError("found no digit in the image, only specks; draw or photograph a dark digit on light paper")
    ink[~(strokes | (_neighbour_count(strokes) > 0))] = 0
    return ink


def _neighbour_count(mask):
    """For each pixel, how many of its eight neighbours are set in `mask`."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return sum(padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width].astype(np.int8)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def _border(grey):
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def otsu_threshold(values):
    """The level that best splits the values into two groups (Otsu's method): paper below, ink above."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return high
    histogram, edges = np.histogram(values, bins=256, range=(low, high))
    histogram = histogram.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    below_count = np.cumsum(histogram)[:-1]
    below_sum = np.cumsum(histogram * centres)[:-1]
    above_count = histogram.sum() - below_count
    below_mean = below_sum / np.maximum(below_count, 1)
    above_mean = ((histogram * centres).sum() - below_sum) / np.maximum(above_count, 1)
    between = below_count * above_count * (below_mean - above_mean) ** 2
    return float(edges[1:-1][np.argmax(between)])


def paper_level(grey, iterations=3, max_samples=20000):
    """The paper's brightness at every pixel: a smooth quadratic surface fitted to the pixels that are not ink.

    A photo is lit unevenly, so one grey level for the whole page would count the darker side of the paper
    as ink. Otsu's threshold tells ink from paper; it is applied again to what is left after each fit, because
    before the first fit the lighting itself can look like ink.
    """
    height, width = grey.shape

    def terms(row, column):
        y, x = row / max(height - 1, 1) - 0.5, column / max(width - 1, 1) - 0.5
        return (np.ones_like(x * y), x, y, x * x, x * y, y * y)

    all_rows, all_columns = np.indices(grey.shape, sparse=True)
    level = np.full_like(grey, np.median(_border(grey)))
    for _ in range(iterations):
        residual = grey - level
        rows, columns = np.nonzero(residual <= otsu_threshold(residual))
        if len(rows) < 6:
            break
        # A few thousand paper pixels pin down six coefficients; fitting them all would only cost time.
        step = max(1, len(rows) // max_samples)
        rows, columns = rows[::step], columns[::step]
        coefficients = _least_squares(np.stack(terms(rows, columns), axis=-1), grey[rows, columns])
        # The surface at every pixel, summed term by term: a row of x and a column of y broadcast to the picture.
        level = sum(coefficient * term for coefficient, term in zip(coefficients, terms(all_rows, all_columns)))
    return level


def _least_squares(design, values):
    """The coefficients that fit `design @ coefficients` to `values` best: the normal equations, a 6x6 solve.

    The six terms are centred on the picture and scaled to it, so their 6x6 system is well conditioned; should it be
    singular anyway (paper pixels all on one line), NumPy's SVD-based least squares answers instead.
    """
    try:
        return np.linalg.solve(design.T @ design, design.T @ values)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(design, values, rcond=None)[0]


def center_of_mass_shift(field):
    """Move the image by whole pixels so its centre of mass lands on the centre, as LeCun did for MNIST."""
    total = field.sum()
    if total == 0:
        return field
    rows, columns = np.indices(field.shape)
    # MNIST put the centre of mass on pixel (14, 14), not halfway between pixels 13 and 14 (measured over the
    # training set: 14.00, 14.01); a network without convolutions notices even that half-pixel difference.
    center = np.asarray(field.shape) // 2
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
            inside, links = files_inside(path)
            found = sorted(file for file in inside if file.suffix.lower() in IMAGE_SUFFIXES)
            if links:  # A link in a folder may lead anywhere: only the folder's own pictures are read.
                print(f"firstnet: {links_note(links)}", file=sys.stderr)
            if not found:
                raise UserError(f"{path}: no image files (PNG, JPEG, BMP) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return files


def prepare_file(path, prepare=prepare_image):
    """`prepare` (the MNIST way by default) applied to an image file; its errors name the file."""
    image = open_image(path)
    try:
        return prepare(image)
    except UserError as error:
        raise UserError(f"{path}: {error}") from error
