"""Run files read as data (run_files.py): every tampered metrics.json, history.json or checkpoint meta is one line
that names the file and the field (exit 2), and `firstnet runs` skips one bad run folder and goes on."""

import json
import pathlib

import numpy as np
import pytest

from firstnet import checkpoints, cli, run_files, runs
from firstnet.errors import UserError

GOOD_METRICS = {"test_accuracy": 0.97, "test_loss": 0.1, "epochs": 5, "epochs_completed": 5, "interrupted": False,
                "hidden_units": 512, "optimizer": "rmsprop", "learning_rate": 0.001, "batch_size": 128,
                "validation_split": 0.0, "seed": 0, "finished_at": "2026-12-01T10:15:00+00:00", "model": "dense",
                "class_names": [str(digit) for digit in range(10)], "preparation": "mnist", "total_seconds": 9.5,
                "data_source": "mnist.npz", "confusion": np.eye(10, dtype=int).tolist()}


def firstnet(*args):
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


def run_folder(root, name, metrics=None, history=None):
    folder = pathlib.Path(root) / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(GOOD_METRICS if metrics is None else metrics))
    (folder / "history.json").write_text(json.dumps(history or {"loss": [0.3, 0.2], "accuracy": [0.9, 0.95]}))
    (folder / "model.keras").write_bytes(b"not read by these tests")
    return folder


@pytest.mark.parametrize("change, field", [
    ([], "the whole file"),
    ({"finished_at": 1764584100}, "finished_at"),
    ({"class_names": 5}, "class_names"),
    ({"preparation": {"resized": "28x28"}}, "preparation"),
    ({"preparation": "resized to 99999999x1, grey"}, "preparation"),
    ({"hidden_units": 10**12}, "hidden_units"),
    ({"test_accuracy": "0.99"}, "test_accuracy"),
    ({"model": "transformer"}, "model"),
    ({"image_shape": [28, 28, 3, 3]}, "image_shape"),
])
def test_tampered_metrics_are_one_line_naming_the_field(tmp_path, change, field):
    metrics = change if isinstance(change, list) else {**GOOD_METRICS, **change}
    folder = run_folder(tmp_path, "bad", metrics)
    with pytest.raises(run_files.BadRunFile) as refused:
        runs.read_metrics(folder)
    message = str(refused.value)
    assert message.startswith(f"{folder / 'metrics.json'}: {field}") and "\n" not in message


@pytest.mark.parametrize("content", ["", "{", '{"test_accuracy": 0.9', "\x00\x01", "[" * 100000])
def test_truncated_or_garbled_metrics_are_one_line(tmp_path, content):
    folder = run_folder(tmp_path, "bad")
    (folder / "metrics.json").write_text(content)
    with pytest.raises(run_files.BadRunFile, match="metrics.json: ") as refused:
        runs.read_metrics(folder)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("history, field", [({"loss": "abc"}, "loss"), ([1, 2], "the whole file"),
                                            ({"loss": [0.1, "x"]}, "loss.1"), ({"loss": {"a": 1}}, "loss")])
def test_tampered_history_is_refused_not_read_as_letters(tmp_path, history, field):
    folder = run_folder(tmp_path, "bad")
    (folder / "history.json").write_text(json.dumps(history))
    with pytest.raises(run_files.BadRunFile) as refused:
        run_files.read_history(folder)
    assert str(refused.value).startswith(f"{folder / 'history.json'}: {field}")


def test_a_diverged_runs_nan_loss_is_still_a_history(tmp_path):
    folder = run_folder(tmp_path, "nan", history={"loss": [float("nan")], "accuracy": [0.1]})
    assert np.isnan(run_files.read_history(folder)["loss"][0])


def test_runs_and_the_newest_skip_one_bad_folder(tmp_path, capsys):
    root = tmp_path / "runs"
    good = run_folder(root, "2026-12-01_101500")
    run_folder(root, "2026-12-02_101500", [])
    run_folder(root, "2026-12-03_101500", {**GOOD_METRICS, "finished_at": 5, "class_names": 5})
    assert firstnet("runs", "--root", root) == 0
    captured = capsys.readouterr()
    assert "2026-12-01_101500" in captured.out and "dense" in captured.out
    assert captured.err.count("skipped a run folder") == 2 and "Traceback" not in captured.err
    assert runs.latest_run(root) == good


def test_predict_with_a_tampered_run_is_one_line(tmp_path, capsys):
    folder = run_folder(tmp_path, "bad", {**GOOD_METRICS, "class_names": 5})
    picture = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28), 255).save(picture)
    assert firstnet("predict", picture, "--model", folder) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "metrics.json: class_names" in err


# --- checkpoint.npz's meta ------------------------------------------------------------------------------------


def valid_meta(loop="compiled"):
    if loop == "compiled":
        shuffling = np.random.default_rng(0).bit_generator.state
    else:
        state = np.random.RandomState(0).get_state(legacy=False)
        shuffling = {**state, "state": {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}}
    recipe = {"model": "dense", "dataset": None, "epochs": 3, "batch_size": 128, "hidden_units": 8,
              "optimizer": "rmsprop", "learning_rate": None, "learning_rate_schedule": "constant",
              "validation_split": 0.0, "seed": 1, "loop": loop, "data": None}
    return {"format": 1, "epoch": 2, "step": 0, "steps": 10, "recipe": recipe, "loop": loop, "totals": [0.0, 0.0, 0.0],
            "shuffling": shuffling, "extra": {"widths": [784]}, "data": {"fingerprint": "0" * 64, "source": "x"},
            "versions": {"python": "3.11", "backend": "jax"}, "history": {"loss": [0.5]}, "resumes": 0}


def write_checkpoint(folder, meta, variables=None):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = variables or {"trainable_0": np.zeros((784, 8), np.float32), "trainable_1": np.zeros(8, np.float32),
                           "trainable_2": np.zeros((8, 10), np.float32), "trainable_3": np.zeros(10, np.float32)}
    with open(folder / checkpoints.FILE, "wb") as stream:
        np.savez(stream, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                 totals=np.zeros(3, np.float32), **arrays)


def tampered(path, value):
    meta = valid_meta()
    *parents, last = path
    holder = meta
    for key in parents:
        holder = holder[key]
    holder[last] = value
    return meta


@pytest.mark.parametrize("path, value, field", [
    (("recipe",), [], "recipe"),
    (("versions",), "x", "versions"),
    (("shuffling",), {"bit_generator": "PCG64", "state": "nope"}, "shuffling"),
    (("shuffling",), [1, 2, 3], "shuffling"),
    (("epoch",), "five", "epoch"),
    (("recipe", "hidden_units"), 10**12, "recipe.hidden_units"),
    (("recipe", "optimizer"), "rmsprop; rm -rf", "recipe.optimizer"),
    (("history",), {"loss": "abc"}, "history.loss"),
    (("extra", "widths"), ["a"], "extra"),
    (("step",), 999, "step 999"),
])
def test_tampered_checkpoint_meta_is_one_line_naming_the_field(tmp_path, path, value, field):
    folder = tmp_path / "run"
    write_checkpoint(folder, tampered(path, value))
    with pytest.raises(UserError) as refused:
        checkpoints.read(folder)
    message = str(refused.value)
    assert "\n" not in message and field in message and "checkpoint.npz" in message, message
    assert checkpoints.read_meta(folder) is None or field == "step 999"


def test_a_valid_checkpoint_meta_reads_for_both_loops(tmp_path):
    for loop in ("compiled", "fit"):
        write_checkpoint(tmp_path / loop, valid_meta(loop))
        assert checkpoints.read(tmp_path / loop).meta["recipe"]["hidden_units"] == 8


def test_resume_of_a_tampered_checkpoint_exits_2_before_training(tmp_path, capsys):
    folder = tmp_path / "run"
    write_checkpoint(folder, tampered(("recipe", "hidden_units"), 10**12))
    assert firstnet("train", "--resume", folder) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "recipe.hidden_units" in err


def test_a_checkpoint_with_wrong_weight_shapes_says_so(tmp_path):
    from firstnet import model as firstnet_model

    folder = tmp_path / "run"
    write_checkpoint(folder, valid_meta(), {"trainable_0": np.zeros((3, 3), np.float32)})
    checkpoint = checkpoints.read(folder)
    network = firstnet_model.build_model("dense", (28, 28), 10, hidden_units=8)
    with pytest.raises(UserError, match=r"holds trainable weights of shapes \(3, 3\).*needs \(784, 8\)"):
        checkpoint.check_shapes(network)


def test_hidden_units_beyond_the_bound_are_refused_before_building(capsys):
    assert firstnet("train", "--hidden-units", 10**12, "--epochs", 1) == 2
    assert "hidden_units must be at most" in capsys.readouterr().err
