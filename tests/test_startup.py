"""What makes the `firstnet` command start fast (startup.py): each trick checked, and each one's fallback forced."""

import importlib.metadata
import json
import os
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest

from firstnet import files, model as firstnet_model, runs, startup


def seeded_model(seed, hidden_units=64):
    keras.utils.set_random_seed(seed)
    return firstnet_model.compile_model(firstnet_model.build_model(hidden_units=hidden_units))


def test_cache_folder_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("FIRSTNET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert startup.compilation_cache_dir() == tmp_path / "xdg" / "firstnet" / "jax"
    for off in ("off", "0", ""):
        monkeypatch.setenv("FIRSTNET_CACHE_DIR", off)
        assert startup.compilation_cache_dir() is None
    monkeypatch.setenv("FIRSTNET_CACHE_DIR", str(tmp_path / "mine"))
    assert startup.compilation_cache_dir() == tmp_path / "mine" / "jax"


def test_cache_folder_must_be_private_and_writable(tmp_path):
    assert files.private_writable_folder(tmp_path / "new" / "cache")
    assert stat.S_IMODE((tmp_path / "new" / "cache").stat().st_mode) & 0o077 == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not files.private_writable_folder(blocker / "cache")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    # Anyone could plant a compiled program there, and JAX would run it: refused.
    assert not files.private_writable_folder(shared)


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["unusable", "off"])
def test_training_works_when_the_cache_cannot_be_used(setting, mnist_path, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = str(blocker / "cache") if setting == "unusable" else "off"
    script = (
        "import json, sys\n"
        "from firstnet import data, train\n"
        f"mnist = data.load_npz({str(mnist_path)!r})\n"
        "small = type(mnist)(mnist.x_train[:640], mnist.y_train[:640], mnist.x_test[:200], mnist.y_test[:200], 'small')\n"
        "from firstnet import startup\n"
        "cache = startup.enable_compilation_cache()\n"
        f"result = train.train(train.TrainConfig(epochs=1, hidden_units=16, seed=0, verbose=0, run_dir={str(tmp_path / 'run')!r}), data=small,\n"
        "                     timings={'compilation_cache': str(cache) if cache else None})\n"
        "print(json.dumps([result.metrics['compilation_cache'], result.metrics['test_accuracy']]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FIRSTNET_CACHE_DIR": cache})
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    cache_used, accuracy = json.loads(done.stdout.strip().splitlines()[-1])
    assert cache_used is None and 0.0 <= accuracy <= 1.0
    assert not (blocker / "cache").exists()


def test_the_cache_is_kept_off_where_jax_would_log_each_load():
    assert startup.cache_is_quiet("0.10.2") and startup.cache_is_quiet("0.11.0") and startup.cache_is_quiet("1.0")
    assert not startup.cache_is_quiet("0.9.2") and not startup.cache_is_quiet("0.4.34")
    assert not startup.cache_is_quiet("dev")


@pytest.mark.slow
@pytest.mark.backend("jax")
@pytest.mark.skipif(not startup.cache_is_quiet(importlib.metadata.version("jax")),
                    reason="JAX before 0.10 logs each cache load on stderr, so firstnet keeps the cache off there")
def test_cache_is_filled_and_reused(mnist_path, tmp_path):
    cache = tmp_path / "cache"
    script = (
        "import json\n"
        "from firstnet import data, train\n"
        f"mnist = data.load_npz({str(mnist_path)!r})\n"
        "small = type(mnist)(mnist.x_train[:640], mnist.y_train[:640], mnist.x_test[:200], mnist.y_test[:200], 'small')\n"
        "import sys\n"
        "from firstnet import startup\n"
        "cache = startup.enable_compilation_cache()\n"
        f"result = train.train(train.TrainConfig(epochs=1, hidden_units=16, seed=0, verbose=0, run_dir=sys.argv[1]), data=small,\n"
        "                     timings={'compilation_cache': str(cache) if cache else None})\n"
        "print(json.dumps([result.metrics['compilation_cache'], result.metrics['test_loss']]))\n"
    )
    outputs = []
    for index in range(2):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"run{index}")], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "FIRSTNET_CACHE_DIR": str(cache)})
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if index == 0:
            entries = sorted(path.name for path in (cache / "jax").iterdir())
            assert any("run_steps" in name for name in entries), entries
    # The second process loads the programs the first one compiled, and gets the very same numbers.
    assert outputs[0] == outputs[1] and outputs[0][0] == str(cache / "jax")
    assert sorted(path.name for path in (cache / "jax").iterdir()) == entries


def python_lines(script):
    """The lines a fresh Python prints running `script`, with firstnet choosing the backend as it does for users."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_lean_import_leaves_out_optional_packages_only_while_keras_imports():
    script = (
        "import sys\n"
        "from firstnet.loops.speedups import lean_import\n"
        "keras, seconds, fallback = lean_import.import_keras(lean=True)\n"
        "print('sklearn' in sys.modules, 'pandas' in sys.modules, 'IPython' in sys.modules, keras.backend.backend())\n"
        "import sklearn, IPython\n"
        "print(sklearn.__name__, IPython.__name__)\n"
    )
    assert python_lines(script) == ["False False False jax", "sklearn IPython"]


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_lean_import_falls_back_to_a_whole_import_if_keras_needs_a_hidden_package():
    # Pretend Keras needed one of the hidden packages (here: jax itself, which it cannot do without).
    script = (
        "import sys\n"
        "from firstnet.loops.speedups import lean_import\n"
        "lean_import.OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ('sklearn', 'jax')\n"
        "keras, seconds, fallback = lean_import.import_keras(lean=True)\n"
        "import keras.ops\n"
        "print(keras.backend.backend(), float(keras.ops.sum(keras.ops.ones(3))))\n"
        "print(fallback)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, reason = done.stdout.splitlines()
    assert first.split() == ["jax", "3.0"]
    # The fallback is named, so the CLI can say it in one line and metrics.json can record it.
    assert reason.startswith("lean Keras import off (ImportError: ") and "hidden while keras imports" in reason


# That a command-line run's figures are drawn by the helper is checked on the tutorial's own run, in
# tests/test_train.py (test_run_folder_is_complete): one training fewer.


def saved_run(tmp_path, figures):
    model = seeded_model(0, hidden_units=8)
    history = {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]}
    metrics = {"confusion": np.eye(10, dtype=int).tolist()}
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    runs.save_run(run_dir, model, history, metrics, figures=figures)
    return run_dir, metrics


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["cannot start", "crashes"])
def test_figures_are_drawn_here_when_the_helper_fails(failure, tmp_path, monkeypatch):
    if failure == "cannot start":
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
        helper = startup.FigureHelper()
    else:
        helper = startup.FigureHelper()
        helper.draw("confusion", tmp_path / "run" / "confusion.png", "not a matrix")
    run_dir, metrics = saved_run(tmp_path, helper)
    assert metrics["figures_drawn_by"] == "this process"
    for name in ("curves.png", "confusion.png", "metrics.json", "model.keras", "history.json"):
        assert (run_dir / name).is_file()


@pytest.mark.slow
def test_helper_draws_what_it_is_asked(tmp_path):
    helper = startup.FigureHelper()
    (tmp_path / "run").mkdir()
    helper.draw("curves", tmp_path / "run" / "curves.png", {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]})
    helper.draw("confusion", tmp_path / "run" / "confusion.png", np.eye(10, dtype=int).tolist())
    assert helper.finish()
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert (tmp_path / "run" / "confusion.png").stat().st_size > 1000
