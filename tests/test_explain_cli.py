"""Issue 26 on the command line: `explain`, `fool`, `predict`'s "not a digit", ECE in `evaluate`, `look --cell`.

Each command runs as a learner types it, on the shared tutorial run (and a small convnet for `explain`); what it
prints is checked against the library computed independently. `predict` fits the run's "not a digit" rule the first
time (a minute or two, drawings included): the rule is a cache the run folder keeps, so the shared run keeps it for
every later test of the session (tests/test_cli.py's predict tests too).
"""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import run_firstnet
from firstnet import calibration, cli, explain, fool, images, nondigits, predict


def firstnet(*args):
    """`firstnet ARGS` in this process (quicker than a new Python for each); returns the exit code."""
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


def one_line_error(code, captured, command):
    assert code == 2 and "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith(f"firstnet {command}: error: ")
    return line


@pytest.fixture(scope="module")
def model(trained_run):
    from firstnet import model as firstnet_model

    return firstnet_model.load_model(trained_run.run_dir / "model.keras")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, mnist):
    """A test digit and a smiley as the page draws them (white strokes on black, 340x340), saved as PNG files."""
    folder = tmp_path_factory.mktemp("pictures")
    pad = Image.fromarray(np.kron(mnist.x_test[4], np.ones((10, 10), np.uint8))).resize((340, 340))
    pad.save(folder / "four.png")
    nondigits.draw_shape(np.random.default_rng(3), "smiley").save(folder / "smiley.png")
    return folder


@pytest.fixture(scope="module")
def convnet_run(tmp_path_factory, mnist):
    """A small convnet, one epoch on 3,000 digits, saved as a run folder holds it: enough to be explained."""
    import keras

    from firstnet import data as mnist_data, files, model as firstnet_model

    keras.utils.set_random_seed(0)
    network = firstnet_model.compile_model(firstnet_model.build_model("convnet"), "adam", learning_rate=0.004)
    network.fit(mnist_data.prepare_images(mnist.x_train[:3000], (28, 28, 1)), mnist_data.one_hot(mnist.y_train[:3000]),
                epochs=1, batch_size=128, verbose=0)
    run_dir = tmp_path_factory.mktemp("convnet") / "run"
    run_dir.mkdir()
    files.save_model(network, run_dir / "model.keras")
    return run_dir


def test_explain_saves_why_beside_the_learner_and_names_its_method(trained_run, model, pictures, tmp_path):
    done = run_firstnet("explain", trained_run.run_dir, pictures / "four.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first, saved = done.stdout.splitlines()
    digit = int(predict.predict_digits(model, images.prepare_file(pictures / "four.png")[None])[0].argmax())
    assert digit == 4 and first.startswith(f"{pictures / 'four.png'}: 4 (probability ") and explain.METHOD in first
    # By default in the current folder, named after the picture.
    assert saved.startswith("saved four_explained.png")
    with Image.open(tmp_path / "four_explained.png") as image:
        assert image.format == "PNG" and image.size == (880, 484)  # explanation_figure: 8x4.4 inches at 110 dpi.


def test_explain_a_convnet_into_a_named_file(convnet_run, pictures, tmp_path, capsys):
    out = tmp_path / "why.png"
    assert firstnet("explain", convnet_run, pictures / "smiley.png", "--out", out) == 0
    assert f"saved {out}" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (880, 484)
    line = one_line_error(firstnet("explain", convnet_run, tmp_path / "gone.png"), capsys.readouterr(), "explain")
    assert "gone.png: no such file or folder" in line


def test_fool_prints_a_small_change_and_a_sure_wrong_answer(trained_run, model, mnist, tmp_path, capsys):
    out = tmp_path / "fooled.png"
    assert firstnet("fool", trained_run.run_dir, "--index", 0, "--target", 3, "--out", out) == 0
    output = capsys.readouterr().out
    assert output.startswith("test digit 0: a 7, read as 7 (")
    found = re.search(r"read as 3 \((\d+\.\d)%\): each pixel moved by at most (\d+) of 255 levels \(L-inf\), "
                      r"L2 size (\d+)", output)
    assert found, output
    printed, linf, l2 = float(found.group(1)), int(found.group(2)), int(found.group(3))
    assert 90 <= printed <= 100 and 1 <= linf <= 64 and 0 < l2 <= 28 * linf  # --min-probability 0.9 by default.
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 800
    # The same search in the library, and the fooled picture read again independently of fool.py.
    result = fool.fool(model, mnist.x_test[0], 3, label=7, min_probability=0.9)
    assert (result["linf"], round(result["l2"])) == (linf, l2)
    assert np.abs(result["fooled"].astype(int) - mnist.x_test[0]).max() == linf <= result["bound"]
    read = predict.predict_digits(model, result["fooled"][None])[0]
    assert read.argmax() == 3 and 100 * read[3] == pytest.approx(printed, abs=0.051)


def test_a_surer_wrong_answer_needs_a_larger_change(model, mnist):
    just = fool.fool(model, mnist.x_test[0], 3, label=7)
    sure = fool.fool(model, mnist.x_test[0], 3, label=7, min_probability=0.99)
    assert just["fooled_it"] and sure["fooled_it"] and sure["probability"] >= 0.99 > just["probability"]
    assert sure["bound"] > just["bound"] and sure["min_probability"] == 0.99
    with pytest.raises(ValueError, match="min_probability"):
        fool.fool(model, mnist.x_test[0], 3, min_probability=1)


def test_fool_refuses_in_one_line(trained_run, model, mnist, capsys):
    line = one_line_error(firstnet("fool", trained_run.run_dir, "--index", 10000, "--target", 3), capsys.readouterr(),
                          "fool")
    assert "--index 10000: out of range; the test set has 10000 digits, so use 0 to 9999" in line
    line = one_line_error(firstnet("fool", trained_run.run_dir, "--index", 0, "--target", 7), capsys.readouterr(), "fool")
    assert "test digit 0 is a 7 already: choose another --target" in line
    misread = int(np.flatnonzero(predict.predict_digits(model, mnist.x_test).argmax(axis=1) != mnist.y_test)[0])
    target = (int(mnist.y_test[misread]) + 1) % 10
    line = one_line_error(firstnet("fool", trained_run.run_dir, "--index", misread, "--target", target),
                          capsys.readouterr(), "fool")
    assert f"test digit {misread}: the network reads this picture as " in line and "choose a digit it reads right" in line


def test_predict_says_when_a_picture_is_not_a_digit(trained_run, pictures, capsys):
    import json

    fitted_before = (trained_run.run_dir / "not_a_digit.npz").is_file()
    files = [pictures / "smiley.png", pictures / "four.png"]
    assert firstnet("predict", *files, "--model", trained_run.run_dir, "--json") == 0
    captured = capsys.readouterr()
    # The rule is learnt once per run, saying so, and kept in the run folder.
    assert ("learning what is not a digit for this run, once: about a minute" in captured.err) is not fitted_before
    assert (trained_run.run_dir / "not_a_digit.npz").is_file()
    smiley, four = (json.loads(line) for line in captured.out.splitlines())
    assert smiley["not_a_digit"] is True and four["not_a_digit"] is False and four["digit"] == 4
    # The digit it would have chosen, and its probability, stay beside the abstention.
    assert smiley["probability"] == max(smiley["probabilities"]) == smiley["probabilities"][smiley["digit"]]
    assert firstnet("predict", *files, "--model", trained_run.run_dir) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # Learnt already.
    assert (f"{files[0]}: this does not look like the digits I learned; if it were one, a {smiley['digit']} "
            f"({smiley['probability']:.0%})") in captured.out
    assert f"{files[1]}: 4   (probability {four['probability']:.3f})" in captured.out


def test_evaluate_prints_the_calibration_error_and_draws_the_reliability_diagram(trained_run, model, mnist, tmp_path,
                                                                                  capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    assert firstnet("evaluate", run) == 0
    output = capsys.readouterr().out
    expected = calibration.expected_calibration_error(predict.predict_digits(model, mnist.x_test), mnist.y_test)
    found = re.search(r"calibration: ECE (\d\.\d{4}) ", output)
    assert found and float(found.group(1)) == pytest.approx(expected, abs=2e-4)
    assert f"saved {run / 'reliability.png'}" in output
    with Image.open(run / "reliability.png") as image:
        assert image.format == "PNG" and min(image.size) > 300


def test_look_opens_a_confusion_cell(trained_run, model, mnist, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    said = predict.predict_digits(model, mnist.x_test).argmax(axis=1)
    counts = {(t, p): int(((mnist.y_test == t) & (said == p)).sum()) for t in range(10) for p in range(10) if t != p}
    true, predicted = max(counts, key=counts.get)  # The fullest mistake cell.
    assert firstnet("look", run, "--cell", f"{true},{predicted}") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{counts[true, predicted]} test pictures of {true} read as {predicted}, the surest first:"
    first = re.match(rf"  test #(\d+) +p\({predicted}\)=(\d\.\d{{3}})", lines[1])
    index = int(first.group(1))
    assert mnist.y_test[index] == true and said[index] == predicted
    assert float(first.group(2)) == pytest.approx(predict.predict_digits(model, mnist.x_test[index][None])[0][predicted],
                                                  abs=6e-4)
    assert lines[-1] == f"wrote {run / f'look_cell_{true}_as_{predicted}.png'}"
    with Image.open(run / f"look_cell_{true}_as_{predicted}.png") as image:
        assert image.format == "PNG"
    line = one_line_error(firstnet("look", run, "--cell", "4,12"), capsys.readouterr(), "look")
    assert "--cell 4,12: predicted must be a class 0..9, got 12" in line


@pytest.mark.parametrize("args, expected", [
    (["fool", "--index", "0", "--target", "10"], "argument --target: '10' must be a digit from 0 to 9"),
    (["fool", "--index", "0"], "the following arguments are required: --target"),
    (["fool", "--index", "0", "--target", "3", "--min-probability", "1"], "'1' must be at least 0 and below 1"),
    (["fool", "--index", "0", "--target", "3", "--out", "f.jpg"], "argument --out: 'f.jpg' must end in .png"),
    (["explain", "a.png", "--out", "why.gif"], "argument --out: 'why.gif' must end in .png"),
    (["look", "--cell", "4-9"], "argument --cell: '4-9' is not TRUE,PREDICTED, like 4,9"),
])
def test_bad_flags_are_one_line(capsys, args, expected):
    assert expected in one_line_error(firstnet(*args), capsys.readouterr(), args[0])
