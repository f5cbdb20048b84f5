"""firstnet.predict: a learner's photo or drawing is prepared the way MNIST was made, and read as the original."""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from firstnet import images, predict
from firstnet.errors import UserError

DIGITS = np.arange(0, 10000, 200)  # 50 test digits spread over the whole test set.
CENTRE = 14.0  # Where MNIST put the centre of mass: on pixel (14, 14), measured over its training set.


def centre_of_mass(image):
    image = np.asarray(image, dtype=np.float64)
    rows, columns = np.indices(image.shape)
    return (rows * image).sum() / image.sum(), (columns * image).sum() / image.sum()


def ink_box(image):
    rows, columns = np.nonzero(image)
    return rows.max() - rows.min() + 1, columns.max() - columns.min() + 1


def encode(array, image_format, mode=None, **options):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def photo(digit, rng, uneven_light=False):
    """A "photo" of an MNIST digit: dark ink on grey paper, 5x larger, off-centre on a bigger page.

    With `uneven_light`, the page is lit from one side (from grey 170 to 225) and has camera grain.
    """
    ink = np.asarray(Image.fromarray(digit).resize((140, 140), Image.BILINEAR), dtype=np.float64) / 255
    page = np.zeros((260, 300))
    top, left = rng.integers(5, 115), rng.integers(5, 155)
    page[top : top + 140, left : left + 140] = ink
    paper = np.linspace(170, 225, page.shape[1])[None, :] if uneven_light else 200.0
    pixels = paper * (1 - page) + 30 * page
    if uneven_light:
        pixels = pixels + rng.normal(0, 6, page.shape)
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def model(trained_run):
    return trained_run.model


@pytest.fixture(scope="module")
def originals(mnist):
    return mnist.x_test[DIGITS]


@pytest.fixture(scope="module")
def original_predictions(model, originals):
    return predict.predict_digits(model, originals).argmax(axis=1)


def assert_mnist_like(prepared):
    assert prepared.shape == (28, 28) and prepared.dtype == np.uint8
    row, column = centre_of_mass(prepared)
    assert abs(row - CENTRE) <= 1 and abs(column - CENTRE) <= 1, (row, column)
    height, width = ink_box(prepared)
    assert max(height, width) <= 20 and max(height, width) >= 18, (height, width)
    assert prepared.max() == 255  # Stroke cores saturated, as in MNIST.


def test_mnist_itself_has_its_centre_of_mass_where_we_put_it(mnist):
    """The reference for CENTRE: LeCun centred MNIST's digits by mass on pixel (14, 14)."""
    centres = np.array([centre_of_mass(image) for image in mnist.x_train[:5000]])
    assert np.abs(centres.mean(axis=0) - CENTRE).max() < 0.05
    assert np.abs(centres - CENTRE).max() < 1


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "BMP"])
def test_photo_is_centred_and_read_as_the_original(model, originals, original_predictions, image_format):
    rng = np.random.default_rng(1)
    prepared = []
    for digit in originals:
        image = images.open_image(encode(photo(digit, rng), image_format), name=f"photo.{image_format.lower()}")
        prepared.append(images.prepare_image(image))
        assert_mnist_like(prepared[-1])
    agreement = (predict.predict_digits(model, np.stack(prepared)).argmax(axis=1) == original_predictions).mean()
    assert agreement >= 0.9, agreement


def test_photo_with_uneven_light_and_grain(model, originals, original_predictions):
    rng = np.random.default_rng(2)
    prepared = []
    for digit in originals:
        rgb = np.repeat(photo(digit, rng, uneven_light=True)[..., None], 3, axis=2)
        prepared.append(images.prepare_image(images.open_image(encode(rgb, "JPEG", quality=90))))
        assert_mnist_like(prepared[-1])
    agreement = (predict.predict_digits(model, np.stack(prepared)).argmax(axis=1) == original_predictions).mean()
    assert agreement >= 0.9, agreement


def test_the_paper_surface_is_the_least_squares_fit_numpy_computes():
    """The paper's level is fitted by a 6x6 solve; NumPy's SVD-based least squares must find the same surface."""
    rng = np.random.default_rng(3)
    for height, width in ((28, 28), (340, 340), (480, 900)):
        rows, columns = np.mgrid[0:height, 0:width]
        grey = np.clip(140 + 70 * columns / width - 50 * (rows / height) ** 2 + rng.normal(0, 6, (height, width)), 0, 255)
        grey[height // 3: height // 2, width // 4: width // 2] = 255  # A block of ink the fit must leave out.
        y, x = rows / (height - 1) - 0.5, columns / (width - 1) - 0.5
        design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)
        level = images.paper_level(grey)
        # The same fit by NumPy's own least squares, on the paper pixels the last round chose (those under Otsu's
        # threshold of what the surface before it left), sampled as paper_level samples them.
        before = images.paper_level(grey, iterations=2)
        residual = grey - before
        chosen = np.nonzero(residual <= images.otsu_threshold(residual))
        step = max(1, len(chosen[0]) // 20000)
        chosen = (chosen[0][::step], chosen[1][::step])
        coefficients = np.linalg.lstsq(design[chosen], grey[chosen], rcond=None)[0]
        np.testing.assert_allclose(level, design @ coefficients, atol=1e-6)
        assert np.abs(level - (140 + 70 * columns / width - 50 * (rows / height) ** 2)).mean() < 3


def test_mnist_digit_passes_through_unchanged_in_meaning(model, originals, original_predictions):
    prepared = np.stack([images.prepare_image(digit) for digit in originals])
    for image in prepared:
        assert_mnist_like(image)
    agreement = (predict.predict_digits(model, prepared).argmax(axis=1) == original_predictions).mean()
    assert agreement >= 0.95, agreement


def drawing(points, pen_width, size=600):
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line(points, fill=0, width=pen_width, joint="curve")
    return image


def test_drawn_digits_with_thin_and_thick_pens(model):
    """A pen line a pixel wide in a large picture must not shrink to a faint hair the network cannot read."""
    strokes = {
        1: [(300, 80), (300, 520)],
        2: [(180, 150), (300, 90), (400, 170), (190, 480), (420, 480)],
        4: [(380, 500), (380, 100), (180, 360), (430, 360)],
        7: [(200, 100), (400, 100), (300, 500)],
    }
    correct = 0
    for digit, points in strokes.items():
        for pen_width in (1, 3, 40):
            prepared = images.prepare_image(drawing(points, pen_width))
            assert_mnist_like(prepared)
            assert (prepared > 128).sum() >= 30, "strokes should be about as bold as MNIST's"
            correct += int(predict.predict_digits(model, prepared[None])[0].argmax() == digit)
    assert correct >= 11, correct


def test_phone_photo_is_turned_upright_by_its_exif_orientation(mnist):
    digit = mnist.x_test[0]
    upright = photo(digit, np.random.default_rng(3))
    exif = Image.Exif()
    exif[0x0112] = 6  # "Rotate 90 degrees clockwise to display": the camera stored it turned the other way.
    stored = np.rot90(upright, k=1)  # np.rot90 turns anticlockwise.
    turned = images.prepare_image(images.open_image(encode(stored, "JPEG", exif=exif, quality=95)))
    expected = images.prepare_image(images.open_image(encode(upright, "JPEG", quality=95)))
    assert np.abs(turned.astype(int) - expected.astype(int)).mean() < 3


@pytest.mark.parametrize("stroke_colour", [0, 255], ids=["black-strokes", "white-strokes"])
def test_transparent_background(mnist, stroke_colour):
    """A canvas export: the digit is only in the alpha channel, the colour is the pen's."""
    digit = mnist.x_test[1]
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = stroke_colour
    rgba[..., 3] = digit
    prepared = images.prepare_image(images.open_image(encode(rgba, "PNG", mode="RGBA")))
    expected = images.prepare_image(digit)
    assert np.abs(prepared.astype(int) - expected.astype(int)).max() <= 3


def test_sixteen_bit_greyscale_scan(mnist):
    digit = mnist.x_test[0]
    scan = Image.fromarray((255 - digit).astype(np.uint16) * 257)  # 0..65535, as a 16-bit scanner saves it.
    prepared = images.prepare_image(images.open_image(encode(np.asarray(scan), "PNG")))
    assert np.abs(prepared.astype(int) - images.prepare_image(digit).astype(int)).max() <= 3


@pytest.mark.parametrize("pixels", [
    np.full((100, 120), 255, np.uint8),
    np.full((100, 120), 128, np.uint8),
    np.zeros((100, 120), np.uint8),
    np.tile(np.linspace(150, 230, 120), (100, 1)).astype(np.uint8),  # Only uneven light, no ink.
], ids=["white", "grey", "black", "light-gradient"])
def test_blank_image_is_refused(pixels):
    with pytest.raises(UserError, match="found no digit in the image"):
        images.prepare_image(images.open_image(encode(pixels, "PNG")))


def png_header_only(width, height):
    """A PNG that declares its size but holds no pixels: the size check must refuse it without decoding."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side, expected", [(5000, "5000x5000 pixels is too large"),
                                            (10000, "10000x10000 pixels is too large"),
                                            (20000, "far too large an image")])
def test_too_large_image_is_refused_from_its_header(side, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's decompression-bomb warning must not reach the learner.
        with pytest.raises(UserError, match=expected):
            images.open_image(png_header_only(side, side), name="huge.png")


def test_non_image_and_broken_image_are_refused(tmp_path):
    with pytest.raises(UserError, match="notes.png: not a picture firstnet reads; use a PNG, JPEG, BMP, GIF or WebP picture"):
        images.open_image(b"these are my notes, not a picture", name="notes.png")
    complete = encode(np.zeros((50, 50), np.uint8) + np.arange(50, dtype=np.uint8), "PNG")
    with pytest.raises(UserError, match="broken.png: the image data is broken"):
        images.open_image(complete[: len(complete) // 2], name="broken.png")
    with pytest.raises(UserError, match="no such file"):
        images.open_image(tmp_path / "missing.png")


def test_predict_files_reads_a_folder(model, mnist, tmp_path):
    rng = np.random.default_rng(4)
    for name, index in (("b.png", 1), ("a.jpg", 0), ("c.bmp", 2)):
        Image.fromarray(photo(mnist.x_test[index], rng)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("not an image, and not an image suffix: ignored")
    results = predict.predict_files(model, [tmp_path])
    assert [result["file"] for result in results] == [str(tmp_path / name) for name in ("a.jpg", "b.png", "c.bmp")]
    for result, index in zip(results, (0, 1, 2)):
        assert len(result["probabilities"]) == 10 and abs(sum(result["probabilities"]) - 1) < 1e-5
        assert result["digit"] == int(np.argmax(result["probabilities"])) == mnist.y_test[index]
        assert result["input"].shape == (28, 28)


def test_a_bad_file_in_a_folder_is_named(model, tmp_path):
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(UserError) as caught:
        predict.predict_files(model, [tmp_path])
    assert str(caught.value).startswith(f"{tmp_path / 'blank.png'}: found no digit")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no image files"):
        images.image_files([empty])
