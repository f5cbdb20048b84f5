"""`firstnet train`: the tutorial's recipe end to end, its run folder, reproducibility, and Ctrl-C."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import BACKEND, as_in_a_terminal, needs_full_mnist, run_firstnet
from firstnet import model as firstnet_model, train

RUN_FILES = ("model.keras", "history.json", "metrics.json", "curves.png", "confusion.png")
METRIC_KEYS = ("test_accuracy", "test_loss", "fit_seconds", "total_seconds", "epochs", "batch_size", "seed",
               "backend", "versions", "data_source")


def score_lines(output):
    """The tutorial's two closing lines, as printed."""
    return [line for line in output.splitlines() if re.fullmatch(r"test_(acc|loss): \d\.\d{4}", line)]


def assert_valid_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200
        assert len(np.unique(np.asarray(image.convert("L")))) > 10, f"{path.name} looks empty"


@pytest.fixture(scope="module")
def cli_run(seed_run):
    """`firstnet train --seed 0` run by a user in a terminal (a subprocess), with the seed recipe (conftest's)."""
    return seed_run


def test_train_end_to_end_reaches_the_tutorials_accuracy(cli_run):
    run_dir, result = cli_run
    assert result.returncode == 0, result.stderr
    scores = score_lines(result.stdout)
    assert [line.split(":")[0] for line in scores] == ["test_acc", "test_loss"]
    test_acc = float(scores[0].split(": ")[1])
    test_loss = float(scores[1].split(": ")[1])
    assert test_acc >= 0.970, result.stdout
    assert scores[1].startswith("test_loss: 0.0") and 0 < test_loss < 0.1
    # Keras's own progress display, as in the tutorial.
    assert "Epoch 1/5" in result.stdout and "Epoch 5/5" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("extra, epochs", [([], 2), (["--epochs", "3"], 3)], ids=["fast", "fast-3-epochs"])
@needs_full_mnist
def test_fast_preset_reaches_the_tutorials_accuracy_sooner(tmp_path, extra, epochs):
    result = run_firstnet("train", "--fast", "--quiet", "--seed", "0", *extra, "--run-dir", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Not the tutorial's recipe, and the run says so: fewer epochs, a higher starting rate, a cosine decay.
    assert metrics["epochs"] == epochs and metrics["epochs_completed"] == epochs
    assert metrics["learning_rate"] == pytest.approx(0.004) and metrics["learning_rate_schedule"] == "cosine"
    assert metrics["test_accuracy"] >= 0.978, metrics["test_accuracy"]
    assert f"test_acc: {metrics['test_accuracy']:.4f}" in result.stdout
    # The saved model carries its schedule, over exactly the run's weight updates, and loads in safe mode.
    model = firstnet_model.load_model(tmp_path / "run")
    rate = model.optimizer.get_config()["learning_rate"]
    assert rate["class_name"] == "CosineDecay" and rate["config"]["decay_steps"] == epochs * 469
    assert int(model.optimizer.iterations.numpy()) == epochs * 469


def test_train_prints_no_warnings(cli_run):
    _, result = cli_run
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert warnings == [], result.stderr
    assert "Traceback" not in result.stderr


def test_run_folder_is_complete(cli_run):
    run_dir, result = cli_run
    assert sorted(path.name for path in run_dir.iterdir()) == sorted(RUN_FILES), "no temporary files left behind"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics, key
    assert metrics["epochs"] == 5 and metrics["batch_size"] == 128 and metrics["seed"] == 0
    assert metrics["backend"] == BACKEND and "keras" in metrics["versions"]
    assert metrics["data_source"].endswith("mnist.npz") and metrics["data_full"] is True
    assert metrics["interrupted"] is False and metrics["epochs_completed"] == 5
    assert 0 < metrics["fit_seconds"] < metrics["total_seconds"]
    # The printed scores are the saved ones.
    assert f"test_acc: {metrics['test_accuracy']:.4f}" in result.stdout
    assert f"test_loss: {metrics['test_loss']:.4f}" in result.stdout
    assert np.asarray(metrics["confusion"]).sum() == 10000
    assert np.trace(np.asarray(metrics["confusion"])) == round(metrics["test_accuracy"] * 10000)
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == len(history["accuracy"]) == 5
    assert history["loss"][-1] < history["loss"][0], "training should lower the loss"
    for name in ("curves.png", "confusion.png"):
        assert_valid_png(run_dir / name)
    # A command-line run has its figures drawn by the helper process while it trains (startup.FigureHelper).
    assert metrics["figures_drawn_by"] == "helper process"
    model = firstnet_model.load_model(run_dir)
    assert [layer.name for layer in model.layers] == ["hidden", "digits"]
    assert model.layers[0].units == 512 and model.layers[1].units == 10


def test_run_files_are_readable_like_files_the_user_saves(cli_run):
    run_dir, _ = cli_run
    umask = os.umask(0o022)
    os.umask(umask)
    for name in RUN_FILES:
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o666 & ~umask, name


def test_evaluate_reloads_the_run_to_the_same_numbers(cli_run):
    run_dir, trained = cli_run
    result = run_firstnet("evaluate", run_dir, cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    assert score_lines(result.stdout) == score_lines(trained.stdout)
    assert "confusion matrix" in result.stdout


@pytest.mark.slow
def test_same_seed_same_metrics(mnist, tmp_path):
    def short_run(seed, name):
        config = train.TrainConfig(epochs=1, seed=seed, run_dir=str(tmp_path / name), verbose=0)
        return train.train(config, data=mnist)

    first, second = short_run(7, "first"), short_run(7, "second")
    assert first.metrics["test_accuracy"] == second.metrics["test_accuracy"]
    assert first.metrics["test_loss"] == second.metrics["test_loss"]
    assert first.history == second.history
    for mine, theirs in zip(first.model.get_weights(), second.model.get_weights()):
        assert np.array_equal(mine, theirs)
    other = short_run(8, "other")
    assert other.metrics["test_loss"] != first.metrics["test_loss"], "the seed should matter"


def read_until(process, pattern, timeout):
    """Collect the subprocess's stdout in a thread; return what was read once `pattern` appears."""
    seen = []
    found = threading.Event()

    def reader():
        while True:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            seen.append(chunk)
            if pattern in b"".join(seen):
                found.set()
        found.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    found.wait(timeout)
    return seen, thread


# Both commands print "Epoch 2/5" as their second epoch starts: the same progress display, from the same events.
SECOND_EPOCH = {"train": b"Epoch 2/5", "scratch": b"Epoch 2/5"}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "scratch"])
def test_ctrl_c_during_training_still_saves_the_model(tmp_path, command):
    process = subprocess.Popen(
        [sys.executable, "-m", "firstnet", command, "--seed", "0", "--epochs", "5", "--run-dir", "run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=as_in_a_terminal)
    try:
        seen, reader = read_until(process, SECOND_EPOCH[command], timeout=300)
        assert SECOND_EPOCH[command] in b"".join(seen), b"".join(seen).decode(errors="replace")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=300)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = b"".join(seen).decode(errors="replace")
    errors = process.stderr.read().decode(errors="replace")
    # Saved, but stopped early: the exit code says so (130, as for any Ctrl-C), so `firstnet train && ...` stops.
    assert process.returncode == 130, errors
    assert "Interrupted: evaluating and saving the model" in errors
    assert "Traceback" not in errors
    assert f"firstnet {command}: stopped by Ctrl-C after" in errors
    assert "the model as trained so far is in run/" in errors
    run_dir = tmp_path / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert 1 <= metrics["epochs_completed"] < 5
    assert f"test_acc: {metrics['test_accuracy']:.4f}" in output
    model = firstnet_model.load_model(run_dir / "model.keras")
    assert model.count_params() == 784 * 512 + 512 + 512 * 10 + 10


@pytest.mark.slow
def test_ctrl_c_in_the_first_epoch_still_saves_the_model(mnist, tmp_path, recwarn):
    """Ctrl-C before any epoch has ended: the model as initialised is still evaluated and saved, without warnings."""
    starts = []

    def interrupt_at_the_start(event):
        if event.kind == "epoch_begin":
            starts.append(event.epoch)
            raise KeyboardInterrupt  # As if Ctrl-C came right after "Epoch 1/2" appeared.

    result = train.train(train.TrainConfig(epochs=2, seed=0, run_dir=str(tmp_path / "run"), verbose=1), data=mnist,
                         watchers=[interrupt_at_the_start])
    assert starts == [1]
    assert result.metrics["interrupted"] is True and result.metrics["epochs_completed"] == 0
    assert result.history == {"loss": [], "accuracy": []}
    assert (tmp_path / "run" / "model.keras").is_file() and (tmp_path / "run" / "metrics.json").is_file()
    assert_valid_png(tmp_path / "run" / "curves.png")
    assert [str(warning.message) for warning in recwarn if issubclass(warning.category, UserWarning)] == []
