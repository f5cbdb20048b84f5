"""Keras 3's promise kept: a model trained on any backend loads on every other, and every backend's output is quiet.

The 3x3 test needs one Python per backend, each in its own install: .ci/run makes them and names them in
FIRSTNET_BACKEND_PYTHONS ("jax=/path/python,torch=...,tensorflow=..."). The checks that need only this install run
everywhere.
"""

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import BACKEND, run_firstnet

PYTHONS = dict(pair.split("=", 1) for pair in os.environ.get("FIRSTNET_BACKEND_PYTHONS", "").split(",") if pair)
# The package whose version decides each backend's numbers, as metrics.json records it.
BACKEND_PACKAGES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def firstnet_in(python, backend, *args, cwd):
    environment = {**os.environ, "KERAS_BACKEND": backend}
    return subprocess.run([python, "-m", "firstnet", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=600)


def small_mnist_file(mnist, folder):
    path = folder / "small.npz"
    np.savez(path, x_train=mnist.x_train[:6000], y_train=mnist.y_train[:6000], x_test=mnist.x_test[:2000],
             y_test=mnist.y_test[:2000])
    return path


@pytest.mark.skipif(len(PYTHONS) < 3, reason="needs a Python per backend in FIRSTNET_BACKEND_PYTHONS (.ci/run sets it)")
def test_a_model_saved_on_any_backend_loads_on_every_other(mnist, tmp_path):
    data = small_mnist_file(mnist, tmp_path)
    trained = {}
    for backend, python in PYTHONS.items():
        # Not a folder named after the backend: `python -m` puts the working folder first on sys.path, and Keras
        # would take a folder named tensorflow/ there for TensorFlow itself.
        done = firstnet_in(python, backend, "train", "--epochs", "1", "--hidden-units", "64", "--seed", "1",
                           "--quiet", "--data", data, "--run-dir", tmp_path / f"trained-on-{backend}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        # Quiet on every backend: nothing from TensorFlow's or anyone's logging on the learner's terminal.
        assert done.stderr == "", done.stderr
        metrics = json.loads((tmp_path / f"trained-on-{backend}" / "metrics.json").read_text())
        assert metrics["backend"] == backend and BACKEND_PACKAGES[backend] in metrics["versions"]
        trained[backend] = metrics["test_accuracy"]
    # The default install (JAX) has neither torch nor TensorFlow, and still loads the models they trained.
    missing = subprocess.run([PYTHONS["jax"], "-c", "import importlib.util as u; "
                              "print(u.find_spec('torch') is None, u.find_spec('tensorflow') is None)"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert missing == ["True", "True"]
    for saved_on, accuracy in trained.items():
        for backend, python in PYTHONS.items():
            done = firstnet_in(python, backend, "evaluate", tmp_path / f"trained-on-{saved_on}", cwd=tmp_path)
            assert done.returncode == 0, f"a {saved_on} model on {backend}: {done.stderr}"
            assert done.stderr == ""
            line = next(line for line in done.stdout.splitlines() if line.startswith("test_acc: "))
            assert line == f"test_acc: {accuracy:.4f}", f"a {saved_on} model scored on {backend}"


@pytest.mark.slow
def test_a_model_that_cannot_load_says_why_in_one_line(tmp_path):
    import zipfile

    broken = tmp_path / "model.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", json.dumps({"module": "keras", "class_name": "NoSuchModel", "config": {}}))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    done = run_firstnet("evaluate", broken, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "cannot load this model safely" in done.stderr and "train a new one" in done.stderr


@pytest.mark.slow
def test_errors_are_one_line_on_this_backend(tmp_path):
    # Whatever the backend, a mistake is one line: no start-up log lines from the backend before it.
    done = run_firstnet("evaluate", tmp_path / "missing", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"firstnet evaluate: error: {tmp_path / 'missing'}: no such model; train one with `firstnet train` or point "
        "to a run folder"], (BACKEND, done.stderr)
