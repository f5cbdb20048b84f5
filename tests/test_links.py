"""Nothing outside a folder is ever read: every reader of a folder skips links (to /etc/passwd, to a picture
elsewhere) and names them in one line; run folders that collide get "exists"; killed writes leave nothing behind."""

import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from firstnet import cli, files, images, kit, names, runs
from firstnet.data import collection
from firstnet.data import folders, formats
from firstnet.errors import UserError


def firstnet(*args):
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


def picture(path, value=0, size=(28, 28), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).convert(mode).save(path)
    return path


@pytest.fixture
def outside(tmp_path):
    """A picture outside every folder the tests read (a link to it must never be followed), and /etc/passwd."""
    return picture(tmp_path / "elsewhere" / "secret.png", 200), pathlib.Path("/etc/passwd")


def test_class_folders_skip_links_to_files_and_folders_and_name_them(tmp_path, outside):
    root = tmp_path / "set"
    for name in ("a", "b"):
        for index in range(5):
            picture(root / name / f"{index}.png", 30 * index)
    os.symlink(outside[0], root / "a" / "x.png")
    os.symlink(outside[1], root / "b" / "passwd.png")
    os.symlink(outside[0].parent, root / "c")
    notes = []
    data = folders.load_class_folders(root, announce=notes.append)
    assert data.class_names == ("a", "b") and len(data.x_train) + len(data.x_test) == 10
    said = [note for note in notes if "link" in note]
    assert len(said) == 2 and "x.png" in said[1] and "passwd.png" in said[1] and str(root / "c") in said[0]


def test_a_png_mnist_folder_skips_links(tmp_path, outside, capsys):
    for split in ("training", "testing"):
        picture(tmp_path / "png" / split / "3" / "0.png", 9)
        os.symlink(outside[0], tmp_path / "png" / split / "3" / "1.png")
    data = formats.load_png_folder(tmp_path / "png")
    assert len(data.x_train) == 1 and "link" in capsys.readouterr().err


def test_idx_and_csv_files_that_are_links_are_refused(tmp_path, outside):
    (tmp_path / "idx").mkdir()
    os.symlink(outside[1], tmp_path / "idx" / "train-images-idx3-ubyte")
    with pytest.raises(UserError, match="is a link"):
        formats.load_idx_folder(tmp_path / "idx")
    (tmp_path / "csv").mkdir()
    os.symlink(outside[1], tmp_path / "csv" / "mnist_train.csv")
    with pytest.raises(UserError, match="is a link"):
        formats.load_csv_folder(tmp_path / "csv")


def test_a_collection_reads_only_its_own_pictures(tmp_path, outside, capsys):
    root = tmp_path / "ours"
    picture(root / "3" / "0123456789abcdef.png", 0)
    (root / collection.MARKER).write_text("x")
    os.symlink(outside[0], root / "3" / "fedcba9876543210.png")
    os.symlink(outside[1], root / "4")
    pixels, labels, ids = collection.read_pictures(root)
    assert ids == ["0123456789abcdef"] and "2 links" in capsys.readouterr().err
    assert collection.Collection(root).count() == 1


def test_predict_of_a_folder_skips_links(tmp_path, outside, capsys):
    picture(tmp_path / "mine" / "a.png")
    os.symlink(outside[0], tmp_path / "mine" / "b.png")
    assert images.image_files([tmp_path / "mine"]) == [tmp_path / "mine" / "a.png"]
    assert "b.png" in capsys.readouterr().err


def test_a_run_folder_that_is_a_link_is_skipped(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere_run"
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text('{"finished_at": "2026-12-01T10:00:00"}')
    (elsewhere / "model.keras").write_bytes(b"x")
    (tmp_path / "runs").mkdir()
    os.symlink(elsewhere, tmp_path / "runs" / "linked")
    assert runs.list_runs(tmp_path / "runs") == [] and "a link" in capsys.readouterr().err


def test_the_kit_copies_no_link(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "real.py").write_text("")
    os.symlink("/etc/passwd", tmp_path / "src" / "passwd")
    assert kit._not_copied(str(tmp_path / "src"), ["real.py", "passwd", "__pycache__"]) == {"passwd", "__pycache__"}


# --- Pictures in a format outside the list, or with NaN, in every reader -------------------------------------


def test_a_float_tiff_with_nan_is_one_line_everywhere(tmp_path, capsys):
    tiff = tmp_path / "nan.tiff"
    Image.fromarray(np.full((28, 28), np.nan, np.float32)).save(tiff)
    with pytest.raises(UserError, match="not a picture firstnet reads"):
        images.open_image(tiff)
    # Renamed .png, it is still a TIFF: the format, not the name, is checked.
    disguised = tmp_path / "set"
    for name in ("a", "b"):
        for index in range(3):
            picture(disguised / name / f"{index}.png", 40 * index)
    (disguised / "a" / "nan.png").write_bytes(tiff.read_bytes())
    notes = []
    data = folders.load_class_folders(disguised, announce=notes.append)
    assert len(data.x_train) + len(data.x_test) == 6 and any("nan.png" in note for note in notes)


# --- Runs that cannot collide; leftovers of killed writes -------------------------------------------------------


def test_a_run_folder_is_made_in_one_step_and_never_shared(tmp_path):
    first = runs.new_run_dir(tmp_path / "same")
    with pytest.raises(UserError, match="already exists; choose a new folder"):
        runs.new_run_dir(tmp_path / "same")
    assert first.is_dir()


def test_a_reserved_folder_is_taken_once(tmp_path):
    reserved = runs.reserve_run_dir(tmp_path / "runs")
    assert runs.new_run_dir(reserved) == reserved and not (reserved / runs.RESERVED).exists()
    with pytest.raises(UserError, match="already exists"):
        runs.new_run_dir(reserved)


def test_a_second_train_with_the_same_run_dir_is_exit_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert firstnet("train", "--run-dir", tmp_path / "run", "--epochs", "1") == 2
    assert "already exists" in capsys.readouterr().err


def test_a_collection_cleans_what_a_killed_write_left(tmp_path):
    root = tmp_path / "ours"
    store = collection.Collection(root)
    store.add_prepared(np.zeros((28, 28), np.uint8), "3")
    leftovers = [root / "3" / ".abc.x1y2.tmp.png", root / collection.ORIGINALS / ".abc.q.tmp.jpg"]
    for leftover in leftovers:
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_bytes(b"half")
    collection.Collection(root).add_prepared(np.eye(28, dtype=np.uint8) * 255, "4")
    assert not any(leftover.exists() for leftover in leftovers)


# --- Names shown safely -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [("\u202egnp.exe", "\\u202egnp.exe"), ("a\u200bb", "a\\u200bb"),
                                           ("line\nbreak", "line\\x0abreak"), ("café ٣ 日本", "café ٣ 日本")])
def test_names_are_shown_with_hidden_characters_escaped(raw, expected):
    assert names.shown(raw) == expected


def test_links_note_escapes_the_names_it_shows(tmp_path):
    assert "\\u202e" in files.links_note([tmp_path / "\u202egnp.exe"])
