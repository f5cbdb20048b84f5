"""firstnet's fast training loop computes what Keras's model.fit computes, and its speed-ups are safe."""

import dataclasses
import importlib.metadata
import os
import pathlib
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest

from firstnet import blanks, data as mnist_data, fastfit, model as firstnet_model, runs, startup, train


def small_mnist(mnist, train_count, test_count=500):
    return dataclasses.replace(mnist, x_train=mnist.x_train[:train_count], y_train=mnist.y_train[:train_count],
                               x_test=mnist.x_test[:test_count], y_test=mnist.y_test[:test_count])


def seeded_model(seed, hidden_units=64, **schedule):
    keras.utils.set_random_seed(seed)
    model = firstnet_model.build_model(hidden_units=hidden_units)
    return firstnet_model.compile_model(model, **schedule)


# The tutorial's constant learning rate, and `train --fast`'s cosine decay over the 16 updates of this test.
SCHEDULES = [{}, {"learning_rate": 0.004, "schedule": "cosine", "decay_steps": 16}]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["constant", "cosine"])
def test_compiled_loop_matches_model_fit_step_for_step(mnist, schedule):
    # 1000 digits in batches of 128: seven full batches and a last one of 104, as model.fit cuts them.
    data = small_mnist(mnist, 1000)
    config = train.TrainConfig(epochs=2, batch_size=128, hidden_units=64, verbose=0)

    reference = seeded_model(7, **schedule)
    fitted = reference.fit(mnist_data.prepare_images(data.x_train), mnist_data.one_hot(data.y_train), epochs=2,
                           batch_size=128, shuffle=False, verbose=0)
    ours = seeded_model(7, **schedule)
    assert fastfit.supported(ours)
    history, interrupted, _ = fastfit.fit(ours, data, config, seed=0, shuffle=False)

    assert not interrupted
    for expected, found in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(found, expected, rtol=2e-4, atol=2e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history[key], fitted.history[key], rtol=1e-4)
    # The optimizer state is written back too: the same number of steps, the same RMSprop velocities.
    assert int(ours.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 16
    for expected, found in zip(reference.optimizer.variables, ours.optimizer.variables):
        np.testing.assert_allclose(np.asarray(found.numpy()), np.asarray(expected.numpy()), rtol=1e-3, atol=1e-9)


def test_skipping_blank_pixels_trains_the_same_network(mnist, monkeypatch):
    # The same three shuffled epochs three ways: blank pixels skipped at the usual widths, at each epoch's exact
    # width (so a later epoch may need a wider program than the first), and not skipped (full products).
    data = small_mnist(mnist, 1000)
    config = train.TrainConfig(epochs=3, batch_size=128, hidden_units=64, verbose=0)
    widths = []
    build_program = fastfit._training_program

    def recorded(model, batch_size, pixels, width):
        widths.append(width)
        return build_program(model, batch_size, pixels, width)

    monkeypatch.setattr(fastfit, "_training_program", recorded)
    results = {}
    for name, width_step in (("usual", 32), ("exact", 1), ("full", 784)):
        monkeypatch.setattr(blanks, "WIDTH_STEP", width_step)
        widths.clear()
        model = seeded_model(7)
        history, _, _ = fastfit.fit(model, data, config, seed=4)
        results[name] = model.get_weights(), history, list(widths)

    assert results["full"][2] == [784]
    assert results["usual"][2] and all(width < 784 and width % 32 == 0 for width in results["usual"][2])
    exact_widths = results["exact"][2]
    assert len(exact_widths) >= 2 and exact_widths == sorted(exact_widths) and exact_widths[-1] < 784
    full_weights, full_history, _ = results["full"]
    for name in ("usual", "exact"):
        weights, history, _ = results[name]
        for expected, found in zip(full_weights, weights):
            np.testing.assert_allclose(found, expected, rtol=2e-4, atol=2e-6)
        for key in ("loss", "accuracy"):
            np.testing.assert_allclose(history[key], full_history[key], rtol=1e-4)


def test_pixels_scaled_on_the_device_equal_the_tutorials_float32_division(mnist):
    import jax

    images = np.concatenate([mnist.x_train, mnist.x_test]).reshape(70000, -1)
    on_device = jax.jit(fastfit.scale_pixels)(images)
    # Bit for bit: the compiled step sees exactly the tutorial's `astype('float32') / 255`.
    assert np.array_equal(np.asarray(on_device), mnist_data.prepare_images(images))


def test_same_seed_same_numbers_with_or_without_progress_bar(mnist, tmp_path):
    # With the progress bar the 19 batches of an epoch run 4 per call; without it, all 19 in one call.
    data = small_mnist(mnist, 3000)
    original = fastfit.STEPS_PER_CALL
    fastfit.STEPS_PER_CALL = 4
    try:
        results = [train.train(train.TrainConfig(epochs=2, hidden_units=32, seed=5, validation_split=0.2,
                                                 verbose=verbose, run_dir=str(tmp_path / f"run{verbose}")), data=data)
                   for verbose in (0, 1)]
    finally:
        fastfit.STEPS_PER_CALL = original
    first, second = (result.metrics for result in results)
    assert first["training_loop"].startswith("compiled")
    for key in ("test_accuracy", "test_loss", "train_accuracy", "train_loss"):
        assert first[key] == second[key]
    assert results[0].history == results[1].history
    # Keras's validation_split: the last 20% before shuffling, scored after every epoch.
    assert set(results[0].history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in results[0].history.values())
    assert first["train_samples"] == 3000


def test_run_records_its_phases(trained_run):
    metrics = trained_run.metrics
    for key in ("import_seconds", "data_seconds", "compile_seconds", "fit_seconds", "evaluate_seconds",
                "save_seconds", "total_seconds"):
        assert isinstance(metrics[key], float) and metrics[key] >= 0.0, key
    assert metrics["compile_seconds"] <= metrics["fit_seconds"] <= metrics["total_seconds"]
    assert metrics["training_loop"].startswith("compiled")
    # On MNIST about a third of the pixels are blank in a whole batch: the first layer's products skip them.
    assert 512 <= metrics["first_layer_columns"] < 640
    assert metrics["epochs_completed"] == 5 and len(trained_run.history["loss"]) == 5
    assert int(trained_run.model.optimizer.iterations.numpy()) == 5 * 469


def test_other_backends_get_model_fit(mnist, monkeypatch):
    model = seeded_model(1, hidden_units=16)
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    assert not fastfit.supported(model)
    monkeypatch.undo()
    # The fallback is the tutorial's own model.fit; it runs here on JAX just as it would on torch or TensorFlow.
    history, interrupted, loop = train.fit_with_keras(
        model, small_mnist(mnist, 512), train.TrainConfig(epochs=1, verbose=0), seed=0)
    assert not interrupted and loop == {"compile_seconds": None, "first_layer_columns": None}
    assert set(history) == {"loss", "accuracy"} and len(history["loss"]) == 1


def test_a_model_compiled_otherwise_is_not_taken_over():
    model = firstnet_model.build_model(hidden_units=8)
    model.compile(optimizer="rmsprop", loss="mean_squared_error", metrics=["accuracy"])
    assert not fastfit.supported(model)


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
    assert runs.private_writable_folder(tmp_path / "new" / "cache")
    assert stat.S_IMODE((tmp_path / "new" / "cache").stat().st_mode) & 0o077 == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not runs.private_writable_folder(blocker / "cache")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    # Anyone could plant a compiled program there, and JAX would run it: refused.
    assert not runs.private_writable_folder(shared)


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
        f"result = train.train(train.TrainConfig(epochs=1, hidden_units=16, seed=0, verbose=0, run_dir={str(tmp_path / 'run')!r}), data=small)\n"
        "print(json.dumps([result.metrics['compilation_cache'], result.metrics['test_accuracy']]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FIRSTNET_CACHE_DIR": cache})
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    cache_used, accuracy = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert cache_used is None and 0.0 <= accuracy <= 1.0
    assert not (blocker / "cache").exists()


def test_cache_is_filled_and_reused(mnist_path, tmp_path):
    cache = tmp_path / "cache"
    script = (
        "import json\n"
        "from firstnet import data, train\n"
        f"mnist = data.load_npz({str(mnist_path)!r})\n"
        "small = type(mnist)(mnist.x_train[:640], mnist.y_train[:640], mnist.x_test[:200], mnist.y_test[:200], 'small')\n"
        "import sys\n"
        f"result = train.train(train.TrainConfig(epochs=1, hidden_units=16, seed=0, verbose=0, run_dir=sys.argv[1]), data=small)\n"
        "print(json.dumps([result.metrics['compilation_cache'], result.metrics['test_loss']]))\n"
    )
    outputs = []
    for index in range(2):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"run{index}")], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "FIRSTNET_CACHE_DIR": str(cache)})
        assert done.returncode == 0, done.stderr
        outputs.append(__import__("json").loads(done.stdout.strip().splitlines()[-1]))
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


def test_lean_import_leaves_out_optional_packages_only_while_keras_imports():
    script = (
        "import sys\n"
        "from firstnet import startup\n"
        "keras, seconds = startup.import_keras(lean=True)\n"
        "print('sklearn' in sys.modules, 'pandas' in sys.modules, 'IPython' in sys.modules, keras.backend.backend())\n"
        "import sklearn, pandas\n"
        "print(sklearn.__name__, pandas.__name__)\n"
    )
    assert python_lines(script) == ["False False False jax", "sklearn pandas"]


def test_lean_import_defers_what_a_run_uses_not_until_its_first_use():
    script = (
        "import sys\n"
        "from firstnet import startup\n"
        "keras, seconds = startup.import_keras(lean=True)\n"
        "print(sorted(name for name in startup.MODULES_A_RUN_USES_NOT if type(sys.modules[name]).__name__ != "
        "'_Deferred'))\n"
        "import gc\n"
        "print('scipy.sparse' in sys.modules, 'jax.experimental.pallas' in sys.modules)\n"
        "print('collector on again:', gc.isenabled(), 'modules left out of its work:', gc.get_freeze_count() > 10000)\n"
        "import numpy as np\n"
        "from jax.experimental import sparse\n"
        "from keras.src.backend.jax import nn\n"
        "mask = nn.splash_attention_mask.NumpyMask(array=np.ones((2, 2), dtype=bool))\n"
        "print(type(mask).__module__, callable(nn.splash_attention_kernel.make_splash_mha))\n"
        "solver = sparse.linalg.spsolve\n"
        "print(solver.__module__, 'scipy.sparse' in sys.modules)\n"
        "from keras.src.utils import summary_utils\n"
        "print(summary_utils.rich.table.Table.__module__, summary_utils.rich.console.Console.__module__)\n"
        "from keras.src.saving import saving_lib\n"
        "print(saving_lib.psutil.virtual_memory().total > 0, saving_lib.h5py.File.__module__)\n"
        "print(type(sys.modules['h5py']).__name__, type(sys.modules['rich.table']).__name__)\n"
        "from jax._src.lib import tpu, mosaic_gpu_dialect\n"
        "print(callable(tpu.register_dialect), type(sys.modules['jaxlib.mosaic.python.tpu']).__name__)\n"
    )
    assert python_lines(script) == [
        "[]",
        "False False",
        "collector on again: True modules left out of its work: True",
        "jax.experimental.pallas.ops.tpu.splash_attention.splash_attention_mask True",
        "jax.experimental.sparse.linalg True",
        "rich.table rich.console",
        "True h5py._hl.files",
        "module module",
        "True module",
    ]


def test_only_installed_modules_get_stand_ins():
    # A stand-in for a module that is not installed would make Keras's `try: import psutil` succeed, and the first
    # use fail; psutil is not one of Keras's requirements.
    script = (
        "import sys\n"
        "from firstnet import startup\n"
        "startup._defer_modules({'firstnet_not_installed': (), 'colorsys': (), 'wave': ('no_such_part',)})\n"
        "print(type(sys.modules['colorsys']).__name__, 'firstnet_not_installed' in sys.modules, 'wave' in sys.modules)\n"
        "try:\n"
        "    import firstnet_not_installed\n"
        "except ImportError:\n"
        "    print('ImportError')\n"
        "import colorsys\n"
        "print(colorsys.rgb_to_hsv(1.0, 0.0, 0.0), type(sys.modules['colorsys']).__name__)\n"
    )
    assert python_lines(script) == ["_Deferred False False", "ImportError", "(0.0, 1.0, 1.0) module"]


def test_lean_import_lets_only_jax_look_through_the_installed_packages():
    # Who asks importlib.metadata for the installed packages while Keras imports: the narrowed list is right only
    # for JAX's plugin search, so a new caller must fail this test.
    script = (
        "import importlib.metadata, os, traceback\n"
        "everything = importlib.metadata.distributions\n"
        "def recording(**selection):\n"
        "    caller = [frame for frame in traceback.extract_stack()[:-1] if 'importlib' not in frame.filename\n"
        "              and not frame.filename.endswith(os.path.join('firstnet', 'startup.py'))][-1]\n"
        "    print(caller.filename.split('site-packages')[-1].replace(os.sep, '/'))\n"
        "    return everything(**selection)\n"
        "importlib.metadata.distributions = recording\n"
        "from firstnet import startup\n"
        "keras, seconds = startup.import_keras(lean=True)\n"
        "print(importlib.metadata.distributions is recording)\n"
    )
    assert python_lines(script) == ["/jax/_src/numpy/array_constructors.py", "True"]


def test_narrowed_package_list_has_every_jax_package():
    everything = {distribution.metadata["Name"].lower().replace("-", "_")
                  for distribution in importlib.metadata.distributions()}
    narrowed = {distribution.metadata["Name"].lower().replace("-", "_")
                for distribution in startup._jax_distributions_only(importlib.metadata.distributions)()}
    assert {"jax", "jaxlib"} <= narrowed
    assert narrowed == {name for name in everything if name.startswith("jax")}


def test_lean_import_falls_back_to_a_whole_import_if_keras_needs_a_hidden_package():
    # Pretend Keras needed one of the hidden packages (here: jax itself, which it cannot do without).
    script = (
        "import sys\n"
        "from firstnet import startup\n"
        "startup.OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ('sklearn', 'jax')\n"
        "keras, seconds = startup.import_keras(lean=True)\n"
        "import keras.ops\n"
        "print(keras.backend.backend(), float(keras.ops.sum(keras.ops.ones(3))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["jax", "3.0"]


def test_cli_run_has_its_figures_drawn_by_the_helper(tmp_path):
    from conftest import run_firstnet

    done = run_firstnet("train", "--epochs", "1", "--quiet", "--seed", "0", "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    metrics = __import__("json").loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["figures_drawn_by"] == "helper process"
    for name in ("curves.png", "confusion.png"):
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done.stdout.startswith("test_acc: ")


def saved_run(tmp_path, figures):
    model = seeded_model(0, hidden_units=8)
    history = {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]}
    metrics = {"confusion": np.eye(10, dtype=int).tolist()}
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    train.save_run(run_dir, model, history, metrics, started=0.0, figures=figures)
    return run_dir, metrics


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


def test_helper_draws_what_it_is_asked(tmp_path):
    helper = startup.FigureHelper()
    (tmp_path / "run").mkdir()
    helper.draw("curves", tmp_path / "run" / "curves.png", {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9]})
    helper.draw("confusion", tmp_path / "run" / "confusion.png", np.eye(10, dtype=int).tolist())
    assert helper.finish()
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert (tmp_path / "run" / "confusion.png").stat().st_size > 1000
