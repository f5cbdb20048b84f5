"""`firstnet tensors`: the tutorial's vocabulary and real-world table, checked against the real MNIST arrays."""

import re

import numpy as np
import pytest
from PIL import Image

from conftest import needs_full_mnist, run_firstnet
from firstnet import tensors

# The tutorial's table, in MNIST's sizes: (name, ndim, shape).
EXPECTED = {
    "scalar": (0, ()),
    "vector_row": (1, (28,)),
    "vector_image": (1, (784,)),
    "matrix": (2, (28, 28)),
    "vector_data": (2, (60000, 784)),
    "timeseries": (3, (60000, 28, 28)),
    "images": (4, (60000, 28, 28, 1)),
    "images_channels_first": (4, (60000, 1, 28, 28)),
    "video": (5, (4, 10, 64, 64, 1)),
}


@pytest.fixture(scope="module")
def found(mnist):
    return tensors.examples(mnist)


def test_each_example_has_the_tutorials_rank_shape_and_dtype(found):
    assert list(found) == list(EXPECTED)
    for key, (ndim, shape) in EXPECTED.items():
        example = found[key]
        assert (example.ndim, example.shape, example.dtype) == (ndim, shape, np.uint8), key
        assert example.tensor.ndim == ndim and example.tensor.shape == shape


def test_the_examples_hold_the_real_digits(found, mnist):
    x_train, y_train = mnist.x_train, mnist.y_train
    assert found["scalar"].tensor.item() == y_train[0] == 5
    assert np.array_equal(found["vector_row"].tensor, x_train[0][14])
    assert np.array_equal(found["vector_image"].tensor, x_train[0].ravel())
    assert np.array_equal(found["matrix"].tensor, x_train[0])
    for index in (0, 123, 59999):
        assert np.array_equal(found["vector_data"].tensor[index], x_train[index].ravel())
        assert np.array_equal(found["timeseries"].tensor[index, 7], x_train[index][7])  # timestep 7 = row 7.
        assert np.array_equal(found["images"].tensor[index, :, :, 0], x_train[index])
        assert np.array_equal(found["images_channels_first"].tensor[index, 0], x_train[index])
    # The big tensors are the same bytes read with other axes, not 47 MB copies each.
    for key in ("vector_data", "timeseries", "images", "images_channels_first"):
        assert np.shares_memory(found[key].tensor, x_train), key


def _parse_index(text):
    parts = []
    for part in text.split(", "):
        if ":" in part:
            start, stop = part.split(":")
            parts.append(slice(int(start), int(stop)))
        else:
            parts.append(int(part))
    return tuple(parts)


@pytest.mark.slow
def test_each_glimpse_is_the_indexing_it_claims(found):
    assert tensors.glimpse(found["scalar"].tensor) == "5"
    for key, example in found.items():
        if key == "scalar":
            continue
        match = re.fullmatch(r"\[(.+)\] = \[(.*)\]", tensors.glimpse(example.tensor))
        assert match, key
        values = example.tensor[_parse_index(match.group(1))]
        assert values.ndim == 1 and 1 < len(values) <= 8, key
        assert [int(value) for value in match.group(2).split()] == values.tolist(), key
        assert values.any(), f"{key}: the glimpse should show ink, not only zeros"


def test_clips_are_real_digits_sliding_across_the_canvas(mnist):
    clips = tensors.moving_digit_clips(mnist.x_train, 5, frames=10, size=64, seed=3)
    sources = tensors.clip_sources(len(mnist.x_train), 5, seed=3)
    assert clips.shape == (5, 10, 64, 64, 1) and clips.dtype == np.uint8
    rows, columns = np.mgrid[0:64, 0:64]
    for clip, index in zip(clips, sources):
        digit = mnist.x_train[index]
        centres = []
        for frame in clip[:, :, :, 0]:
            # Pixel mass is preserved: each frame holds the whole digit, nothing cut or blended.
            assert int(frame.sum()) == int(digit.sum())
            # And it is the digit itself, pasted somewhere: find it from the bounding box of the ink.
            ink_rows, ink_columns = np.nonzero(frame)
            digit_rows, digit_columns = np.nonzero(digit)
            top, left = ink_rows.min() - digit_rows.min(), ink_columns.min() - digit_columns.min()
            assert np.array_equal(frame[top : top + 28, left : left + 28], digit)
            mass = frame.astype(np.float64)
            centres.append(((rows * mass).sum() / mass.sum(), (columns * mass).sum() / mass.sum()))
        centres = np.array(centres)
        steps = np.diff(centres[:, 1])
        # The centre of mass moves every frame, always the same way across, from one side of the canvas to the other.
        assert np.all(steps > 0) or np.all(steps < 0)
        assert abs(centres[-1, 1] - centres[0, 1]) == pytest.approx(64 - 28)


def test_clips_are_deterministic_and_the_seed_matters(mnist):
    first = tensors.moving_digit_clips(mnist.x_train, 3, seed=0)
    assert np.array_equal(first, tensors.moving_digit_clips(mnist.x_train, 3, seed=0))
    assert not np.array_equal(first, tensors.moving_digit_clips(mnist.x_train, 3, seed=1))


def test_clips_refuse_a_canvas_too_small_to_move_on(mnist):
    with pytest.raises(ValueError, match="size"):
        tensors.moving_digit_clips(mnist.x_train, 2, frames=10, size=30)
    with pytest.raises(ValueError, match="count"):
        tensors.moving_digit_clips(mnist.x_train[:3], 4)


@pytest.mark.slow
@needs_full_mnist
def test_cli_prints_the_table_and_saves_figures_and_a_ten_frame_gif(tmp_path):
    out = tmp_path / "figures"
    result = run_firstnet("tensors", "--out", out)
    assert result.returncode == 0, result.stderr
    for text in ("scalar", "train_labels[0]", "(60000, 784)", "(samples, features)", "(60000, 28, 28)",
                 "(samples, timesteps, features)", "(60000, 28, 28, 1)", "(60000, 1, 28, 28)", "(4, 10, 64, 64, 1)",
                 "(samples, frames, height, width, channels)"):
        assert text in result.stdout, text
    for name in ("vocabulary.png", "images.png", "video_filmstrip.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200, name
    with Image.open(out / "video.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 10
        frames = []
        for number in range(gif.n_frames):
            gif.seek(number)
            frames.append(np.asarray(gif.convert("L")))
    assert all(not np.array_equal(frames[i], frames[i + 1]) for i in range(9)), "every frame should differ: it moves"
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"


def test_cli_refuses_a_file_as_out_folder(tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("keep me")
    result = run_firstnet("tensors", "--out", target)
    assert result.returncode == 2
    assert "is a file" in result.stderr and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep me" and result.stdout == ""
    result = run_firstnet("tensors", "--out", target / "inside")
    assert result.returncode == 2 and "cannot create this folder" in result.stderr and "Traceback" not in result.stderr


def test_examples_accept_what_the_readme_has_in_scope(mnist, found):
    from firstnet import data

    # `examples(data)` with `from firstnet import data` in scope: the module stands for the default MNIST.
    from_module = tensors.examples(data)
    from_tuple = tensors.examples(mnist.as_keras())  # What `data.load_data()` returns.
    for key in ("scalar", "matrix", "vector_data", "video"):
        assert np.array_equal(from_module[key].tensor, found[key].tensor), key
        assert np.array_equal(from_tuple[key].tensor, found[key].tensor), key
    for wrong in (None, "mnist.npz", mnist.x_train, np):
        with pytest.raises(TypeError, match=r"examples\(\) needs MNIST: the object from data.load_mnist\(\)"):
            tensors.examples(wrong)


def test_the_table_fits_80_columns_and_names_every_tensor(found):
    lines = tensors.format_table(found).splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    for example in found.values():
        assert f"{example.name}: {example.expression}" in lines
        assert f"    ndim {example.ndim}, shape {example.shape}, dtype {example.dtype}" in lines
