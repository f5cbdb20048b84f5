"""Your own pictures (data/folders.py) and datasets by name (data/named.py), checked against the arrays they came from.

The class-folder sets here are real MNIST digits written out as pictures: the loader must give back exactly the
arrays they were written from, with the labels of their folders.
"""

import gzip
import os

import numpy as np
import pytest

from conftest import BACKEND
from PIL import Image

from firstnet import cli, data as mnist_data, train
from firstnet.data import folders, named
from firstnet.errors import UserError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_class_folders(root, images, labels, names=WORDS, suffix=".png", convert=None):
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(convert(image) if convert else image).save(folder / f"{index:05d}{suffix}")


def colour(image, size=36):
    """A colour, 36x36 variant of a digit: ink in orange on dark blue paper, resized with Pillow."""
    ink = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    paper, stroke = np.array([20, 30, 90], np.float32), np.array([250, 160, 30], np.float32)
    return np.round(paper + ink[..., None] * (stroke - paper)).astype(np.uint8)


@pytest.fixture(scope="module")
def word_set(tmp_path_factory, mnist):
    """6,000 training and 1,000 test digits of the real MNIST as train/<word>/ and test/<word>/ PNG folders."""
    root = tmp_path_factory.mktemp("words")
    write_class_folders(root / "train", mnist.x_train[:6000], mnist.y_train[:6000])
    write_class_folders(root / "test", mnist.x_test[:1000], mnist.y_test[:1000])
    return root


def test_class_folders_give_back_the_arrays_they_were_written_from(word_set, mnist):
    loaded = mnist_data.load_mnist(str(word_set))
    assert loaded.class_names == tuple(sorted(WORDS))
    # Folders are numbered in sorted order ("eight" is 0), so each word maps back to its digit.
    digit_of = np.array([WORDS.index(name) for name in loaded.class_names])
    # Written in file-name order within each class: compare per class, as sets of exact pictures.
    for split, images, labels in (("train", mnist.x_train[:6000], mnist.y_train[:6000]),
                                  ("test", mnist.x_test[:1000], mnist.y_test[:1000])):
        got_images, got_labels = getattr(loaded, f"x_{split}"), digit_of[getattr(loaded, f"y_{split}")]
        assert got_images.shape == images.shape and got_images.dtype == np.uint8
        for digit in range(10):
            np.testing.assert_array_equal(got_images[got_labels == digit], images[labels == digit])
    assert loaded.dataset == "folders" and loaded.preparation == "resized to 28x28, grey, paper removed"
    assert loaded.notes == ()  # MNIST's paper is black already: taking it away changes no pixel.


def test_both_models_train_on_the_word_set_and_record_its_names(word_set, tmp_path):
    results = {}
    for family, epochs in (("dense", 5), ("convnet", 2)):
        config = train.TrainConfig(**(train.CONVNET if family == "convnet" else {}), seed=0, data=str(word_set),
                                   runs_root=str(tmp_path / "runs"), verbose=0)
        config.epochs = epochs
        results[family] = train.train(config).metrics
    # Measured (seed 0, 2-core machine): dense 0.919, convnet 0.929 on these 1,000 test digits, from 6,000, with
    # the compiled loop (JAX); Keras's model.fit on TensorFlow, which shuffles otherwise, reached 0.875 for the convnet.
    assert results["dense"]["test_accuracy"] >= 0.89
    assert results["convnet"]["test_accuracy"] >= (0.90 if BACKEND == "jax" else 0.85)
    for family, metrics in results.items():
        assert metrics["model"] == family and metrics["class_names"] == sorted(WORDS)
        assert metrics["image_shape"] == [28, 28] and metrics["dataset"] == "folders"


@pytest.mark.slow
def test_a_colour_set_of_another_size_stays_colour_and_trains(tmp_path, mnist):
    write_class_folders(tmp_path / "set" / "train", mnist.x_train[:3000], mnist.y_train[:3000], convert=colour)
    write_class_folders(tmp_path / "set" / "test", mnist.x_test[:500], mnist.y_test[:500], convert=colour)
    loaded = mnist_data.load_mnist(str(tmp_path / "set"))
    assert loaded.x_train.shape == (3000, 36, 36, 3) and loaded.preparation == "resized to 36x36, colour, paper removed"
    digit_of = np.array([WORDS.index(name) for name in loaded.class_names])
    # Each picture's paper (dark blue) is taken away: black paper, ink the distance from it (data/folders.py).
    expected = np.stack([folders.without_paper(colour(image)) for image in mnist.x_test[:500]])
    for digit in range(10):
        np.testing.assert_array_equal(loaded.x_test[digit_of[loaded.y_test] == digit],
                                      expected[mnist.y_test[:500] == digit])
    config = train.TrainConfig(**train.CONVNET, seed=0, runs_root=str(tmp_path / "runs"), verbose=0)
    config.epochs = 5
    metrics = train.train(config, data=loaded).metrics
    # Measured (seed 0, 2-core machine): 0.956 on the 500 colour test digits after 5 epochs of 3,000.
    assert metrics["test_accuracy"] >= 0.88 and metrics["image_shape"] == [36, 36, 3]


@pytest.mark.slow
def test_explore_and_show_read_any_set_with_its_class_names(tmp_path, mnist, capsys):
    write_class_folders(tmp_path / "set" / "train", mnist.x_train[:200], mnist.y_train[:200], convert=colour)
    write_class_folders(tmp_path / "set" / "test", mnist.x_test[:100], mnist.y_test[:100], convert=colour)
    loaded = mnist_data.load_mnist(str(tmp_path / "set"))
    first = int(loaded.y_train[0])
    assert cli.main(["explore", "--data", str(tmp_path / "set"), "--index", "0"]) == 0
    said = capsys.readouterr().out
    # The counts are by class name, in the loader's order, and they add up to the training set.
    counted = dict(item.split(":") for item in said.split("labels counted (train)")[1].splitlines()[0].split())
    assert list(counted) == list(loaded.class_names) and sum(map(int, counted.values())) == 200
    assert "train_images.shape                      (200, 36, 36, 3)" in said
    assert f"(label {first}, {loaded.class_names[first]}), 36 rows of 36 pixels, red channel" in said
    # The red channel's numbers, row by row, exactly as loaded.
    pixel_rows = said.split("red channel, 0 = none, 255 = full:\n")[1].splitlines()[:36]
    np.testing.assert_array_equal(np.array([row.split() for row in pixel_rows], dtype=int), loaded.x_train[0][..., 0])

    assert cli.main(["show", "0", "--grid", "1x3", "--data", str(tmp_path / "set")]) == 0
    drawn = capsys.readouterr().out.splitlines()
    assert f"0: {first}: {loaded.class_names[first]}"[:14] in drawn[2] and max(map(len, drawn)) <= 80
    assert cli.main(["show", "1", "--out", str(tmp_path / "one.png"), "--data", str(tmp_path / "set")]) == 0
    assert (tmp_path / "one.png").stat().st_size > 1000
    # tensors is the tutorial's 28x28 vocabulary: a 36x36 colour set is one line and exit 2.
    assert cli.main(["tensors", "--data", str(tmp_path / "set")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "36x36 colour" in error[0] and "firstnet explore" in error[0]


@pytest.mark.slow
def test_one_folder_layout_holds_out_a_fifth_and_evaluate_scores_all(tmp_path, mnist):
    write_class_folders(tmp_path / "flat", mnist.x_test[:500], mnist.y_test[:500])
    for_training = mnist_data.load_path(tmp_path / "flat")
    counts = np.bincount(mnist.y_test[:500], minlength=10)
    assert len(for_training.x_test) == sum(count // 5 for count in counts)
    assert len(for_training.x_train) + len(for_training.x_test) == 500
    # The held-out fifth is the same every time, and no picture is in both halves.
    again = mnist_data.load_path(tmp_path / "flat")
    np.testing.assert_array_equal(again.x_test, for_training.x_test)
    train_rows = {image.tobytes() for image in for_training.x_train}
    assert not any(image.tobytes() in train_rows for image in for_training.x_test)
    assert len(mnist_data.load_path(tmp_path / "flat", for_scoring=True).x_test) == 500


def test_unreadable_and_other_files_are_skipped_with_a_note(tmp_path, mnist, capsys):
    write_class_folders(tmp_path / "set", mnist.x_train[:40], mnist.y_train[:40] % 2, names=("cat", "dog"))
    (tmp_path / "set" / "cat" / "broken.png").write_bytes(b"not a picture at all")
    (tmp_path / "set" / "dog" / "notes.txt").write_text("hello")
    Image.fromarray(mnist.x_train[40]).resize((56, 40)).save(tmp_path / "set" / "dog" / "big.png")
    loaded = mnist_data.load_path(tmp_path / "set")
    said = capsys.readouterr().err
    assert "broken.png" in said and "not readable" in said and "notes.txt" in said and "not PNG, JPEG or BMP" in said
    assert "1 of other sizes were stretched" in said
    assert len(loaded.x_train) + len(loaded.x_test) == 41 and loaded.x_train.shape[1:] == (28, 28)


@pytest.mark.parametrize("make, expected", [
    (lambda root: (root / "cat").mkdir() or (root / "dog").mkdir(), "no pictures"),
    (lambda root: (root / "cat").mkdir(), "only one class"),
    (lambda root: (root / "train" / "cat").mkdir(parents=True), "no test/"),
])
def test_bad_sets_are_one_line_and_exit_2(tmp_path, mnist, capsys, make, expected):
    root = tmp_path / "set"
    root.mkdir()
    make(root)
    if (root / "cat").is_dir():
        Image.fromarray(mnist.x_train[0]).save(root / "cat" / "0.png")
    code = cli.main(["train", "--data", str(root), "--quiet", "--run-dir", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and expected in error[0] and "Traceback" not in error[0]


def test_class_names_other_systems_refuse_are_noted_or_refused(tmp_path, mnist, capsys):
    root = tmp_path / "set"
    for name in ("a:b", "con", "Cat", "cat"):
        (root / name).mkdir(parents=True)
        Image.fromarray(mnist.x_train[0]).save(root / name / "0.png")
        Image.fromarray(mnist.x_train[1]).save(root / name / "1.png")
    loaded = mnist_data.load_path(root)
    said = capsys.readouterr().err
    assert loaded.class_names == ("Cat", "a:b", "cat", "con")
    assert "cannot be folder names on Windows" in said and "differ only in case" in said
    # Undecodable bytes in a name would be a label no one can read: refused.
    os.mkdir(os.path.join(os.fsencode(root), b"bad\xff"))
    with pytest.raises(UserError, match="not valid text"):
        mnist_data.load_path(root)
    os.rmdir(os.path.join(os.fsencode(root), b"bad\xff"))
    # The same letters written two ways (composed and decomposed) would be two labels that look the same.
    for name in ("caf\u00e9", "cafe\u0301"):
        (root / name).mkdir()
        Image.fromarray(mnist.x_train[0]).save(root / name / "0.png")
    with pytest.raises(UserError, match="same name written two ways"):
        mnist_data.load_path(root)


def write_idx(path, array):
    magic = (0x803 if array.ndim == 3 else 0x801).to_bytes(4, "big")
    header = magic + b"".join(size.to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_by_name_from_keras_cache_and_offline_line(monkeypatch, mnist, capsys):
    # Keras reads $KERAS_HOME once, at import: the tests' isolated Keras home (conftest.py) is the cache here.
    monkeypatch.setenv("FIRSTNET_OFFLINE", "1")
    cache = named.keras_datasets_folder() / "fashion-mnist"
    assert not cache.exists()
    with pytest.raises(UserError) as refused:
        mnist_data.load_mnist(dataset="fashion_mnist")
    message = str(refused.value)
    assert "train-images-idx3-ubyte.gz" in message and str(cache) in message
    # Files in keras's own cache layout (real MNIST pixels standing in for the clothes): keras reads them offline.
    cache.mkdir(parents=True)
    write_idx(cache / "train-images-idx3-ubyte.gz", mnist.x_train[:200])
    write_idx(cache / "train-labels-idx1-ubyte.gz", mnist.y_train[:200])
    write_idx(cache / "t10k-images-idx3-ubyte.gz", mnist.x_test[:50])
    write_idx(cache / "t10k-labels-idx1-ubyte.gz", mnist.y_test[:50])
    loaded = mnist_data.load_mnist(dataset="fashion_mnist")
    np.testing.assert_array_equal(loaded.x_train, mnist.x_train[:200])
    np.testing.assert_array_equal(loaded.y_test, mnist.y_test[:50])
    assert loaded.class_names == named.FASHION_CLASSES and loaded.class_names[5] == "sandal"
    assert not loaded.is_full and loaded.dataset == "fashion_mnist"
    # The lesson's other commands take the set by name too, and say its classes' names.
    assert cli.main(["show", "0", "--dataset", "fashion_mnist"]) == 0
    assert f"label {mnist.y_train[0]}: {named.FASHION_CLASSES[mnist.y_train[0]]}" in capsys.readouterr().out
    assert cli.main(["explore", "--dataset", "fashion_mnist"]) == 0
    assert "t-shirt/top:" in capsys.readouterr().out.lower()
    assert cli.main(["tensors", "--dataset", "fashion_mnist"]) == 0
    import shutil

    shutil.rmtree(cache)


def test_prepare_picture_matches_the_loader(tmp_path, mnist):
    Image.fromarray(colour(mnist.x_test[3])).save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as image:
        np.testing.assert_array_equal(folders.prepare_picture(image, (36, 36, 3)), colour(mnist.x_test[3]))
        np.testing.assert_array_equal(folders.prepare_picture(image, (36, 36, 3), paper_removed=True),
                                      folders.without_paper(colour(mnist.x_test[3])))
    assert folders.shape_of(folders.preparation_of((36, 36, 3))) == (36, 36, 3)
    assert folders.shape_of("mnist") is None
