"""Hostile and broken files: whatever bytes a loader or the photo preparation is given, it answers with a
firstnet.errors.UserError (one line) or a valid result; never another exception, a hang, or unbounded memory.

Property-based (Hypothesis), with a bounded number of examples and a deadline per example.
"""

import gzip
import json
import io
import struct
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from PIL import Image

from firstnet import data, images
from firstnet.errors import UserError

BOUNDED = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_or_result(call):
    """Run `call`; a UserError must be one line. Any other exception fails the test."""
    try:
        return call()
    except UserError as error:
        assert "\n" not in str(error) and str(error)
        return None


@BOUNDED
@given(content=st.binary(max_size=4096))
def test_npz_of_any_bytes(content, tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    one_line_or_result(lambda: data.load_path(str(path)))


@BOUNDED
@given(magic=st.integers(0, 2**32 - 1), count=st.integers(0, 2**32 - 1), rows=st.integers(0, 2**32 - 1),
       payload=st.binary(max_size=2048), compress=st.booleans())
def test_idx_headers_that_claim_anything(magic, count, rows, payload, compress, tmp_path):
    """IDX headers may claim 4 billion images of 4 billion rows: refused before any allocation of that size."""
    folder = tmp_path / "idx"
    folder.mkdir(exist_ok=True)
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        content = struct.pack(">IIII", magic, count, rows, rows) + payload
        (folder / stem).write_bytes(gzip.compress(content) if compress else content)
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        content = struct.pack(">II", 2049, count) + payload[:64]
        (folder / stem).write_bytes(content)
    one_line_or_result(lambda: data.load_path(str(folder)))


@BOUNDED
@given(rows=st.lists(st.text(alphabet="0123456789,-. x\n", max_size=200), max_size=5))
def test_csv_of_any_text(rows, tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir(exist_ok=True)
    for name in ("mnist_train.csv", "mnist_test.csv"):
        (folder / name).write_text("\n".join(rows))
    one_line_or_result(lambda: data.load_path(str(folder)))


MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "HSV", "LAB")


@BOUNDED
@given(mode=st.sampled_from(MODES), width=st.integers(1, 300), height=st.integers(1, 300),
       fmt=st.sampled_from(("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")), seed=st.integers(0, 2**16),
       orientation=st.integers(0, 9))
def test_photos_of_every_mode_size_and_format(mode, width, height, fmt, seed, orientation):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    try:
        image = image.convert(mode)
    except ValueError:
        return
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    try:
        image.save(buffer, format=fmt, exif=exif.tobytes()) if fmt in ("JPEG", "PNG", "WEBP") else image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        return  # Pillow cannot write this mode in this format; nothing for firstnet to read.
    prepared = one_line_or_result(lambda: images.prepare_image(images.open_image(buffer.getvalue(), "photo")))
    if prepared is not None:
        assert np.asarray(prepared).shape in ((28, 28), (784,), (1, 784))


@BOUNDED
@given(content=st.binary(max_size=4096), prefix=st.sampled_from((b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM",
                                                                  b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP")))
def test_photos_of_any_bytes(content, prefix):
    one_line_or_result(lambda: images.prepare_image(images.open_image(prefix + content, "photo")))


@pytest.mark.parametrize("side", [4097, 30000, 2**16 - 1])
def test_headers_that_claim_huge_sizes_are_refused_before_decoding(side):
    """A PNG whose header says side x side pixels, with almost no data: refused from the header, at once."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    content = bytearray(buffer.getvalue())
    content[16:24] = struct.pack(">II", side, side)  # IHDR's width and height (its CRC is now wrong, too).
    with pytest.raises(UserError) as refused:
        images.prepare_image(images.open_image(bytes(content), "huge.png"))
    assert "\n" not in str(refused.value)


def test_an_animated_image_reads_its_first_frame():
    frames = [Image.fromarray(np.full((40, 40), value, dtype=np.uint8)) for value in (0, 255)]
    frames[0].paste(255, (10, 5, 30, 35))
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    prepared = one_line_or_result(lambda: images.prepare_image(images.open_image(buffer.getvalue(), "a.gif")))
    assert prepared is not None


def image_bytes(kind, width, height, mode, garbage):
    """A picture file's bytes: a real picture of the mode and size, or bytes that only start like one."""
    if garbage is not None:
        return {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "bmp": b"BM"}[kind] + garbage
    buffer = io.BytesIO()
    picture = Image.new(mode, (width, height))
    picture.save(buffer, format={"png": "PNG", "jpeg": "JPEG", "bmp": "BMP"}[kind])
    return buffer.getvalue()


PICTURES = st.tuples(st.sampled_from(["png", "jpeg", "bmp"]), st.integers(1, 80), st.integers(1, 80),
                     st.sampled_from(["L", "RGB"]), st.one_of(st.none(), st.binary(max_size=256)))


@BOUNDED
@given(pictures=st.lists(PICTURES, min_size=1, max_size=6))
def test_png_folders_of_any_pictures(pictures, tmp_path):
    # MNIST's PNG layout: training/<label>/<n>.png and testing/<label>/<n>.png, whatever the files hold.
    root = tmp_path / f"pngs-{uuid.uuid4().hex}"  # A folder of its own for each example.
    for index, (kind, width, height, mode, garbage) in enumerate(pictures):
        for split in ("training", "testing"):
            folder = root / split / str(index % 10)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.png").write_bytes(image_bytes(kind, width, height, mode, garbage))
    one_line_or_result(lambda: data.load_path(str(root)))


@BOUNDED
@given(pictures=st.lists(PICTURES, min_size=1, max_size=8), classes=st.integers(1, 3))
def test_class_folders_of_any_pictures(pictures, classes, tmp_path):
    # Your own pictures: FOLDER/<class>/*, with sizes, modes and broken files mixed; one line, a note, or a set.
    root = tmp_path / f"mine-{uuid.uuid4().hex}"
    for index, (kind, width, height, mode, garbage) in enumerate(pictures):
        folder = root / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.{kind}").write_bytes(image_bytes(kind, width, height, mode, garbage))
    loaded = one_line_or_result(lambda: data.load_path(str(root)))
    if loaded is not None:
        assert len(loaded.x_train) + len(loaded.x_test) >= 1 and len(loaded.class_names) >= 2


# --- Run files (run_files.py): any JSON in metrics.json, history.json or a checkpoint's meta ---------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20)
METRICS_FIELDS = ("test_accuracy", "finished_at", "class_names", "preparation", "hidden_units", "epochs", "model",
                  "image_shape", "interrupted", "confusion", "finetune", "experiment", "total_seconds",
                  "epochs_completed", "learning_rate", "learning_rate_schedule", "validation_split", "batch_size",
                  "optimizer", "data_source", "training_loop", "data_full", "learned", "why")


@settings(BOUNDED, max_examples=150)
@given(content=JSON_VALUES | st.dictionaries(st.sampled_from(METRICS_FIELDS), JSON_VALUES, max_size=6))
@example(content={"training_loop": " "})  # Found by hypothesis: a blank loop's name has no first word.
def test_metrics_json_of_any_content(content, tmp_path):
    from firstnet import runs, runs_table

    folder = tmp_path / f"run-{uuid.uuid4().hex}"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(content))
    metrics = one_line_or_result(lambda: runs.read_metrics(folder))
    if metrics is not None:  # Whatever is accepted, every reader can show.
        runs_table.runs_table([(folder, metrics)], tmp_path)
        runs_table.model_line(folder / "model.keras", metrics)


@BOUNDED
@given(content=JSON_VALUES | st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3))
def test_history_json_of_any_content(content, tmp_path):
    from firstnet import run_files

    folder = tmp_path / f"run-{uuid.uuid4().hex}"
    folder.mkdir()
    (folder / "history.json").write_text(json.dumps(content))
    history = one_line_or_result(lambda: run_files.read_history(folder))
    assert history is None or all(isinstance(value, (int, float)) for values in history.values() for value in values)


@BOUNDED
@given(field=st.sampled_from(("recipe", "versions", "shuffling", "epoch", "step", "steps", "loop", "totals", "extra",
                              "data", "history", "format")), value=JSON_VALUES,
       nested=st.sampled_from(("hidden_units", "epochs", "batch_size", "optimizer", "seed", None)))
def test_checkpoint_meta_of_any_content(field, value, nested, tmp_path):
    from firstnet import checkpoints

    shuffling = np.random.default_rng(0).bit_generator.state
    recipe = {"model": "dense", "epochs": 3, "batch_size": 128, "hidden_units": 8, "optimizer": "rmsprop",
              "learning_rate": None, "learning_rate_schedule": "constant", "validation_split": 0.0, "seed": 1,
              "loop": "compiled", "data": None}
    meta = {"format": 1, "epoch": 2, "step": 0, "steps": 10, "recipe": recipe, "loop": "compiled", "totals": [],
            "shuffling": shuffling, "extra": {}, "data": {"fingerprint": "0" * 64, "source": "x"},
            "versions": {}, "history": {}, "resumes": 0}
    if nested and field == "recipe":
        recipe[nested] = value
    else:
        meta[field] = value
    folder = tmp_path / f"run-{uuid.uuid4().hex}"
    folder.mkdir()
    with open(folder / checkpoints.FILE, "wb") as stream:
        np.savez(stream, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), totals=np.zeros(0))
    found = one_line_or_result(lambda: checkpoints.read(folder))
    if found is not None:
        assert 1 <= found.meta["recipe"]["hidden_units"] <= 65_536
