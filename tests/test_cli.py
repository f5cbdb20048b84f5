"""The `firstnet` command: each lesson step prints the right thing, and every mistake is one line and exit code 2."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import needs_full_mnist, run_firstnet
from firstnet import cli, plots


def firstnet(*args):
    """`firstnet ARGS` in this process; returns the exit code (argparse's own exits included)."""
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def reference(mnist_path):
    with np.load(mnist_path, allow_pickle=False) as archive:
        return {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")}


def assert_one_line_error(code, captured, command):
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"firstnet {command}: error: ") if command else lines[0].startswith("firstnet: error: ")
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# --- Bad input: exit 2, one line, no traceback, nothing changed ------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    (["train", "--epochs", "0"], "argument --epochs: '0' must be at least 1"),
    (["train", "--epochs", "abc"], "argument --epochs: 'abc' is not a whole number"),
    (["train", "--validation-split", "1.5"], "argument --validation-split: '1.5' must be at least 0 and below 1"),
    (["train", "--batch-size", "-1"], "argument --batch-size: '-1' must be at least 1"),
    (["train", "--learning-rate", "0"], "argument --learning-rate: '0' must be a positive number"),
    (["train", "--learning-rate", "nan"], "argument --learning-rate: 'nan' must be a positive number"),
    (["train", "--optimizer", "fastest"], "argument --optimizer: invalid choice: 'fastest'"),
    (["show", "4", "--out", "digit.jpg"], "argument --out: 'digit.jpg' must end in .png"),
    (["show", "4", "--grid", "0x3"], "argument --grid: '0x3' is not ROWSxCOLUMNS, like 5x5"),
    (["show", "-4"], "argument index: '-4' must be 0 or more"),
    (["predict", "a.png", "--show-input", "seen.gif"], "argument --show-input: 'seen.gif' must end in .png"),
])
def test_bad_flags(capsys, args, expected):
    line = assert_one_line_error(firstnet(*args), capsys.readouterr(), args[0])
    assert expected in line and f"see `firstnet {args[0]} --help`" in line


def test_unknown_command(capsys):
    line = assert_one_line_error(firstnet("trian"), capsys.readouterr(), None)
    assert "invalid choice: 'trian'" in line and "did you mean 'train'?" in line
    line = assert_one_line_error(firstnet("train", "--optimizer", "adamm"), capsys.readouterr(), "train")
    assert "did you mean 'adam'?" in line
    line = assert_one_line_error(firstnet("zzzz"), capsys.readouterr(), None)
    assert "invalid choice: 'zzzz'" in line and "did you mean" not in line  # Nothing close: no guess.


@pytest.mark.slow
@needs_full_mnist
def test_a_validation_split_that_leaves_nothing_to_train_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The full MNIST keeps floor(60000 * 0.0001) = 6 digits to train on: a tiny run, but a run.
    assert firstnet("train", "--validation-split", "0.9999", "--epochs", "1", "--quiet", "--run-dir", "six") == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "six" / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and metrics["validation_split"] == 0.9999
    # Offline (no --data, no FIRSTNET_DATA, no keras cache, no network): 4,000 bundled digits leave none.
    monkeypatch.delenv("FIRSTNET_DATA")
    code = firstnet("train", "--validation-split", "0.9999", "--epochs", "1")
    notice, error = capsys.readouterr().err.splitlines()
    # The line that says the bundled digits are used comes first; the mistake is the one line after it.
    assert "bundled" in notice and code == 2
    assert error.startswith("firstnet train: error: --validation-split 0.9999: leaves 0 of 4000 digits")
    assert "use a fraction like 0.1" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["six"]  # No run folder left behind.


def test_train_with_missing_or_corrupt_data(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(firstnet("train", "--data", "no/such/mnist.npz"), capsys.readouterr(), "train")
    assert "--data no/such/mnist.npz: no such file or folder" in line
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    line = assert_one_line_error(firstnet("train", "--data", corrupt), capsys.readouterr(), "train")
    assert f"{corrupt}: cannot read it as .npz" in line
    # No run folder, not even an empty runs/, is left behind by a run that never started.
    assert sorted(tmp_path.iterdir()) == [corrupt]


def test_firstnet_data_errors_name_the_variable(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FIRSTNET_DATA", str(tmp_path / "gone.npz"))
    line = assert_one_line_error(firstnet("explore"), capsys.readouterr(), "explore")
    assert f"FIRSTNET_DATA {tmp_path / 'gone.npz'}: no such file or folder" in line and "--data" not in line.split(";")[0]


@needs_full_mnist
def test_run_dir_that_is_not_empty_is_left_alone(capsys, tmp_path):
    run_dir = tmp_path / "my_run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes(b"an earlier model the learner cares about")
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in run_dir.iterdir()}
    line = assert_one_line_error(firstnet("train", "--epochs", "1", "--run-dir", run_dir), capsys.readouterr(), "train")
    assert "already exists and is not empty" in line
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in run_dir.iterdir()} == before


@needs_full_mnist
def test_index_out_of_range(capsys):
    line = assert_one_line_error(firstnet("show", "60000"), capsys.readouterr(), "show")
    assert "index 60000: out of range; the train set has 60000 images, so use 0 to 59999" in line
    line = assert_one_line_error(firstnet("show", "9999", "--split", "test", "--grid", "2x2"), capsys.readouterr(), "show")
    assert "use 0 to 9996" in line
    code = firstnet("explore", "--index", "60000")
    captured = capsys.readouterr()
    assert "--index 60000: out of range" in assert_one_line_error(code, captured, "explore")
    assert captured.out == "", "an error comes before the table, not after it"


def test_evaluate_missing_or_corrupt_model(capsys, tmp_path):
    line = assert_one_line_error(firstnet("evaluate", tmp_path / "no_run"), capsys.readouterr(), "evaluate")
    assert "no such model" in line
    (tmp_path / "model.keras").write_bytes(os.urandom(3000))
    line = assert_one_line_error(firstnet("evaluate", tmp_path), capsys.readouterr(), "evaluate")
    assert "not a Keras model archive" in line and "retrain it with `firstnet train`" in line
    assert "File not found" not in line


def test_predict_missing_or_fake_image(capsys, tmp_path, trained_run):
    line = assert_one_line_error(firstnet("predict", tmp_path / "seven.png", "--model", trained_run.run_dir),
                                 capsys.readouterr(), "predict")
    assert "seven.png: no such file or folder" in line
    fake = tmp_path / "notes.png"
    fake.write_text("a text file with a picture's name")
    line = assert_one_line_error(firstnet("predict", fake, "--model", trained_run.run_dir), capsys.readouterr(), "predict")
    assert "notes.png: not a picture firstnet reads; use a PNG, JPEG, BMP, GIF or WebP picture" in line


def test_predict_without_any_run(capsys, tmp_path, monkeypatch, reference):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(reference["x_test"][0]).save(tmp_path / "digit.png")
    line = assert_one_line_error(firstnet("predict", "digit.png"), capsys.readouterr(), "predict")
    assert "no trained model in runs/; run `firstnet train` first" in line


@pytest.mark.slow
def test_errors_end_to_end_in_a_subprocess(tmp_path):
    (tmp_path / "model.keras").write_bytes(os.urandom(1000))
    for args in (["evaluate", tmp_path / "model.keras"], ["train", "--epochs", "abc"]):
        result = run_firstnet(*args, cwd=tmp_path)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.startswith(f"firstnet {args[0]}: error:")


@needs_full_mnist
def test_output_cut_short_by_a_pipe_is_not_an_error(tmp_path):
    # Far more output than a pipe holds (about 300 kB), so the writer is still writing when `head` leaves.
    command = f"'{sys.executable}' -m firstnet show 0 --grid 30x10 | head -n 2"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.startswith("train_images[0..299]") and len(result.stdout.splitlines()) == 2
    assert result.stderr == ""


def test_debug_shows_the_traceback(tmp_path):
    for args in (["--debug", "show", "60000"], ["show", "60000", "--debug"]):
        result = run_firstnet(*args, cwd=tmp_path)
        assert result.returncode == 2, "a mistake exits 2, with --debug too"
        assert "Traceback" in result.stderr and "UserError: index 60000: out of range" in result.stderr
        assert result.stderr.splitlines()[-1].startswith("firstnet show: error: index 60000: out of range")


# --- Help is fast: no deep-learning imports ---------------------------------------------------------------------


def test_help_works_and_imports_no_keras(tmp_path):
    console_script = pathlib.Path(sys.executable).with_name("firstnet")
    for command in ([str(console_script), "--help"], [sys.executable, "-m", "firstnet", "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stderr
        for step in ("explore", "show", "train", "evaluate", "predict", "runs"):
            assert step in result.stdout
    # The loops and the start-up are imported before Keras chooses its backend (startup.py imports it in the
    # background while MNIST is read): none of them may import it.
    probe = ("import sys, firstnet.cli, firstnet.loops.compiled, firstnet.startup\n"
             "for args in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
             "    try:\n        firstnet.cli.main(args)\n    except SystemExit:\n        pass\n"
             "print('IMPORTED', 'keras' in sys.modules, 'jax' in sys.modules, 'matplotlib' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.stdout.splitlines()[-1] == "IMPORTED False False False", result.stdout[-500:] + result.stderr


# --- The lesson's steps ------------------------------------------------------------------------------------------


def explore_rows(output):
    rows = {}
    for line in output.splitlines():
        expression, _, value = line.partition("  ")
        if value:
            rows[expression.strip()] = value.strip()
    return rows


def test_explore_prints_the_tutorials_expressions(capsys, reference):
    assert firstnet("explore") == 0
    rows = explore_rows(capsys.readouterr().out)
    train_images, train_labels = reference["x_train"], reference["y_train"]
    assert rows["len(train_labels)"] == str(len(train_labels)) == "60000"
    assert rows["train_images.shape"] == str(train_images.shape) == "(60000, 28, 28)"
    assert rows["train_images[0].shape"] == "(28, 28)"
    assert rows["train_images[0][0]"] == np.array2string(train_images[0][0], max_line_width=200)
    assert rows["test_images.shape"] == "(10000, 28, 28)" and rows["test_images[0].shape"] == "(28, 28)"
    assert rows["train_images.dtype"] == "uint8"
    assert rows["train_images.min(), train_images.max()"] == "(0, 255)"
    counts = np.bincount(train_labels, minlength=10)
    assert rows["labels counted (train)"] == "  ".join(f"{digit}:{count}" for digit, count in enumerate(counts))
    assert rows["train_labels[:10]"] == "[5 0 4 1 9 2 1 3 1 4]"


def test_explore_index_prints_the_pixels(capsys, reference):
    assert firstnet("explore", "--index", "7") == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("train_images[7] (label 3)"))
    pixels = np.array([[int(value) for value in line.split()] for line in lines[start + 1 : start + 29]])
    assert np.array_equal(pixels, reference["x_train"][7])


@pytest.mark.slow
def test_show_writes_a_png(capsys, tmp_path, reference):
    out = tmp_path / "digit.png"
    assert firstnet("show", "4", "--out", out) == 0
    assert f"saved {out}" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG"
        grey = np.asarray(image.convert("L"))
    assert grey.min() < 60 and grey.max() > 200  # Ink and paper: imshow(cmap=binary) of a real digit.
    grid = tmp_path / "grid.png"
    assert firstnet("show", "0", "--grid", "2x3", "--split", "test", "--out", grid) == 0
    with Image.open(grid) as image:
        assert image.format == "PNG" and image.size[0] > image.size[1]


def test_show_prints_the_digit_as_text(capsys, reference):
    assert firstnet("show", "4") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"train_images[4], label {reference['y_train'][4]}"
    art = [line.ljust(56) for line in lines[1:29]]
    assert len(lines) == 29
    # Two characters a pixel; a blank where the pixel is (nearly) paper, a block where there is ink.
    ink_in_art = np.array([[row[2 * column] != " " for column in range(28)] for row in art])
    assert np.array_equal(ink_in_art, reference["x_train"][4] >= 256 / len(plots.SHADES))


def test_show_grid_prints_text(capsys, reference):
    assert firstnet("show", "0", "--grid", "2x3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "train_images[0..5], each titled index: label"
    for index in range(6):
        assert f"{index}: {reference['y_train'][index]}" in "\n".join(lines)
    # The heading and a blank, then two rows of digits (titles and 14 lines each), a blank between.
    assert len(lines) == 2 + 2 * (1 + 14) + 1
    # Quarter blocks: each character holds 2x2 pixels, ink where the shaded single digit shows any.
    art = [line.ljust(14)[:14] for line in lines[3:17]]
    ink = reference["x_train"][0] >= 256 / len(plots.SHADES)
    drawn = np.array([[plots.QUADRANTS.index(row[column // 2]) >> ((row_number % 2) * 2 + column % 2) & 1
                       for column in range(28)] for row_number, row in
                      ((number, art[number // 2]) for number in range(28))], dtype=bool)
    assert np.array_equal(drawn, ink)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["show", "0", "--grid", "5x5"], ["show", "0", "--grid", "3x12"], ["show", "7"],
                                  ["tensors"]])
def test_output_fits_80_columns(capsys, args):
    assert firstnet(*args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, max(lines, key=len)


def test_evaluate_prints_the_saved_scores(capsys, trained_run):
    assert firstnet("evaluate", trained_run.run_dir) == 0
    output = capsys.readouterr().out
    assert "(10000 test digits, the run's own test set)" in output
    assert f"test_acc: {trained_run.metrics['test_accuracy']:.4f}\n" in output
    assert f"test_loss: {trained_run.metrics['test_loss']:.4f}\n" in output
    table = output.split("confusion matrix (rows: true digit, columns: predicted digit):\n")[1].splitlines()
    confusion = np.array([[int(value) for value in line.split()[1:]] for line in table[1:11]])
    assert np.array_equal(confusion, np.asarray(trained_run.metrics["confusion"]))


def copied_run(trained_run, folder, **changes):
    """A copy of the shared run whose metrics.json says what `changes` say (the shared run stays read-only)."""
    shutil.copytree(trained_run.run_dir, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, **changes}))
    return folder


def test_evaluate_scores_a_run_on_its_own_data_without_data(capsys, trained_run, tmp_path, monkeypatch, mnist_path):
    # The learner trained with --data mnist.npz; later, without --data or FIRSTNET_DATA, evaluate finds that file.
    run = copied_run(trained_run, tmp_path / "run", data_path=str(mnist_path), data_source=str(mnist_path))
    monkeypatch.delenv("FIRSTNET_DATA")
    assert firstnet("evaluate", run) == 0
    captured = capsys.readouterr()
    assert f"data: {mnist_path} (10000 test digits, the run's own test set)" in captured.out
    assert f"test_acc: {trained_run.metrics['test_accuracy']:.4f}\n" in captured.out
    assert "note:" not in captured.out and captured.err == ""


def test_evaluate_warns_when_the_test_digits_were_training_digits(capsys, trained_run, tmp_path, monkeypatch):
    assert firstnet("evaluate", trained_run.run_dir) == 0
    assert "note:" not in capsys.readouterr().out  # The real test set: nothing to warn about.
    # The run's data has moved away and no MNIST is to be found: the bundled digits stand in for the test set;
    # they are MNIST training digits this model has seen.
    gone = tmp_path / "moved" / "mnist.npz"
    run = copied_run(trained_run, tmp_path / "run", data_path=str(gone), data_source=str(gone))
    monkeypatch.delenv("FIRSTNET_DATA")
    assert firstnet("evaluate", run) == 0
    captured = capsys.readouterr()
    assert f"the run's data {gone} is gone" in captured.err
    assert ("data: bundled subset (firstnet mnist_5k) (1000 test digits, not the run's own test set, it trained on "
            "the full MNIST)") in captured.out
    assert "note: these 1000 test digits are from MNIST's training set" in captured.out and "--data" in captured.out


def test_runs_lists_a_run(capsys, trained_run, tmp_path):
    root = trained_run.run_dir.parent
    assert firstnet("runs", "--root", root) == 0
    lines = capsys.readouterr().out.splitlines()
    name = trained_run.run_dir.name if len(str(trained_run.run_dir)) > 24 else str(trained_run.run_dir)
    row = next(line for line in lines if line.startswith(name + " "))
    assert f"{trained_run.metrics['test_accuracy']:.4f}" in row and row.endswith("full MNIST")
    assert row.split()[4] == "5"  # Epochs, after the run and the two parts of when it finished.
    assert max(len(line) for line in lines) <= 80
    assert firstnet("runs", "--root", tmp_path / "none") == 0
    assert "no finished runs" in capsys.readouterr().out


def test_runs_shows_what_differs_between_runs(capsys, trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fast = {"epochs": 2, "epochs_completed": 2, "learning_rate": 0.004000000189989805,
            "learning_rate_schedule": "cosine"}
    copied_run(trained_run, tmp_path / "runs" / "a_tutorial", finished_at="2026-11-24T10:15:00+01:00")
    copied_run(trained_run, tmp_path / "runs" / "b_fast", finished_at="2026-11-24T10:20:00+01:00", **fast)
    # A loop other than the shared run's own (the compiled loop on JAX, model.fit on the other backends).
    other_loop = "model.fit" if trained_run.metrics["loop"] == "compiled" else "compiled epochs (model.stateless_call)"
    copied_run(trained_run, tmp_path / "runs" / "c_small", finished_at="2026-11-24T10:25:00+01:00", hidden_units=64,
               validation_split=0.1, training_loop=other_loop)
    assert firstnet("runs") == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    header = lines[0].split()
    # The finished time gives way to what differs when both do not fit; the data is the same, so said below.
    assert [column for column in header if column != "finished"][:4] == ["run", "test_acc", "epochs", "seconds"]
    assert {"hidden", "lr", "val", "loop"} <= set(header) and not {"optimizer", "batch", "data"} & set(header)
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {"runs/a_tutorial", "runs/b_fast", "runs/c_small"}
    assert "0.004 cosine" in rows["runs/b_fast"] and " 0.001 " in rows["runs/a_tutorial"]
    assert " 64 " in rows["runs/c_small"] and " 0.1 " in rows["runs/c_small"] and other_loop.split()[0] in rows["runs/c_small"]
    # What is the same may wrap onto lines of its own, each indented.
    same = " ".join(line.strip() for line in lines[next(i for i, line in enumerate(lines)
                                                        if line.startswith("same in every run:")):])
    assert "optimizer rmsprop" in same and "augment none" in same and "data full MNIST" in same


def photo_of(digit):
    """A digit as a learner would photograph it: dark ink on light paper, larger, off-centre."""
    ink = np.asarray(Image.fromarray(digit).resize((112, 112), Image.BILINEAR), dtype=np.float64) / 255
    page = np.zeros((200, 180))
    page[30:142, 50:162] = ink
    return Image.fromarray((220 - 190 * page).astype(np.uint8))


def test_predict_folder_as_json(capsys, tmp_path, trained_run, reference):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, suffix in ((0, "png"), (1, "jpg"), (2, "bmp")):
        photo_of(reference["x_test"][index]).save(folder / f"digit{index}.{suffix}")
    assert firstnet("predict", folder, "--model", trained_run.run_dir, "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for index, line in enumerate(lines):
        result = json.loads(line)
        assert set(result) == {"file", "digit", "label", "probabilities", "not_a_digit", "probability", "model"}
        assert result["not_a_digit"] is False and result["probability"] == result["probabilities"][result["digit"]]
        assert result["label"] == str(result["digit"])  # MNIST's classes are named by their digits.
        assert result["model"] == str(pathlib.Path(trained_run.run_dir) / "model.keras")
        assert pathlib.Path(result["file"]).name.startswith(f"digit{index}.")
        assert len(result["probabilities"]) == 10 and all(isinstance(p, float) for p in result["probabilities"])
        assert sum(result["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert result["digit"] == int(np.argmax(result["probabilities"])) == reference["y_test"][index]


def test_predict_uses_the_newest_run_and_shows_its_input(capsys, tmp_path, monkeypatch, trained_run, reference):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained_run.run_dir, tmp_path / "runs" / "lesson")
    photo_of(reference["x_test"][0]).save(tmp_path / "seven.png")
    assert firstnet("predict", "seven.png", "--show-input", "seen.png") == 0
    output = capsys.readouterr().out
    # First, which model answered: the newest run, with its score and recipe.
    model_line, digit_line = output.splitlines()[:2]
    assert model_line.startswith(f"model: {pathlib.Path('runs', 'lesson', 'model.keras')} (test_acc "
                                 f"{trained_run.metrics['test_accuracy']:.4f}, trained 20")
    assert model_line.endswith(", the tutorial's recipe)")
    assert digit_line.startswith(f"seven.png: {reference['y_test'][0]}   (probability ")
    assert len([line for line in output.splitlines() if line.startswith("  ")]) == 10  # The ten probabilities.
    assert "saved seen.png" in output
    with Image.open(tmp_path / "seen.png") as image:
        assert image.format == "PNG"
