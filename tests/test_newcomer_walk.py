"""A newcomer's walk (issue 24): every small lie they met is one true line now. A read-only folder, a backend that
is not installed or does not exist, a mistyped flag, Ctrl-C before the first epoch, "the newest run", the header's
count after --validation-split, and evaluate's --model."""

import errno
import json
import os
import pathlib
import types

import numpy as np
import pytest

from firstnet import cli, runs, train
from firstnet.cli import common
from firstnet.data import Dataset


def firstnet(*args):
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


def one_line(capsys, code, *words):
    captured = capsys.readouterr()
    assert code == 2 and len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err, captured.err
    for word in words:
        assert word in captured.err, captured.err
    return captured.err


@pytest.fixture
def small_npz(mnist, tmp_path):
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=mnist.x_train[:300], y_train=mnist.y_train[:300], x_test=mnist.x_test[:100],
             y_test=mnist.y_test[:100])
    return path


def test_train_in_a_read_only_folder_is_one_line(tmp_path, small_npz, capsys, monkeypatch):
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    code = firstnet("train", "--data", small_npz, "--epochs", "1", "--run-dir", tmp_path / "ro" / "run", "--quiet")
    one_line(capsys, code, "cannot create it (Read-only file system)")


def test_show_into_a_read_only_folder_is_one_line(tmp_path, small_npz, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    one_line(capsys, firstnet("show", "0", "--data", small_npz, "--out", tmp_path / "ro" / "x.png"),
             "Read-only file system", "folder you can write to")


@pytest.mark.parametrize("backend, words", [("jaxx", ["jax, torch, tensorflow"]),
                                            ("torch", ['pip install -e ".[torch]"'])])
def test_a_missing_or_unknown_backend_is_one_line(backend, words, capsys, monkeypatch):
    if backend == "torch" and __import__("importlib").util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    monkeypatch.setenv("KERAS_BACKEND", backend)
    one_line(capsys, firstnet("train", "--epochs", "1"), *words)


def test_a_mistyped_flag_gets_did_you_mean(capsys):
    one_line(capsys, firstnet("train", "--epocs", "1"), "did you mean --epochs?")
    one_line(capsys, firstnet("predict", "x.png", "--modle", "runs/a"), "did you mean --model?")


def test_evaluate_accepts_the_model_flag_its_error_suggests(tmp_path, capsys):
    one_line(capsys, firstnet("evaluate"), "--model RUN_DIR")
    assert cli.build_parser().parse_args(["evaluate", "--model", "runs/a"]).model_flag == "runs/a"
    one_line(capsys, firstnet("evaluate", "--model", tmp_path / "gone"), "gone")


def write_run(root, name, **metrics):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"x")
    (folder / "metrics.json").write_text(json.dumps({"finished_at": f"2026-12-0{len(list(root.iterdir()))}T10:00",
                                                     "epochs": 5, "epochs_completed": 5, **metrics}))
    return folder


def test_the_newest_run_is_a_finished_one(tmp_path, capsys):
    finished = write_run(tmp_path, "a")
    write_run(tmp_path, "b", interrupted=True, epochs_completed=0)
    write_run(tmp_path, "c", experiment=True, epochs_completed=1)
    assert runs.latest_run(tmp_path) == finished
    assert firstnet("runs", "--root", tmp_path) == 0
    assert "an experiment" not in capsys.readouterr().out  # The table shows what differs; the line below says it.
    from firstnet import runs_table

    assert runs_table.recipe({"experiment": True, "epochs": 1}).startswith("an experiment")


def test_only_unfinished_runs_means_no_newest(tmp_path):
    write_run(tmp_path, "b", interrupted=True, epochs_completed=0)
    with pytest.raises(ValueError, match="1 stopped early or marked as experiments"):
        runs.latest_run(tmp_path)


def test_ctrl_c_says_how_to_go_on(tmp_path, capsys):
    (tmp_path / "checkpoint.npz").write_bytes(b"x")
    result = types.SimpleNamespace(run_dir=tmp_path, metrics={"interrupted": True, "epochs_completed": 1, "epochs": 5})
    assert common.exit_code(result, "train") == 130
    assert f"firstnet train --resume {tmp_path}" in capsys.readouterr().err
    os.unlink(tmp_path / "checkpoint.npz")
    common.exit_code(result, "train")
    assert "cannot be resumed" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_is_not_the_newest_and_resume_answers_at_once(mnist, tmp_path):
    import time

    small = Dataset(mnist.x_train[:2000], mnist.y_train[:2000], mnist.x_test[:200], mnist.y_test[:200], source="x")

    def stop(event):
        if event.kind == "checkpoint":
            raise KeyboardInterrupt

    result = train.train(train.TrainConfig(epochs=2, seed=0, verbose=0, hidden_units=8, run_dir=str(tmp_path / "a")),
                         data=small, watchers=[stop])
    assert result.metrics["interrupted"] and result.metrics["epochs_completed"] == 0
    with pytest.raises(ValueError, match="stopped early"):
        runs.latest_run(tmp_path)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="cannot be resumed"):
        train.train(train.TrainConfig(resume=str(tmp_path / "a"), verbose=0))
    assert time.perf_counter() - started < 1


def test_the_header_counts_the_digits_trained_on_after_the_validation_split(mnist):
    config = train.TrainConfig(validation_split=0.1)
    line = train.describe(config, mnist, 0)
    assert "on 54000 digits (6000 more held out to validate)" in line
    assert "on 60000 digits (" in train.describe(train.TrainConfig(), mnist, 0)
