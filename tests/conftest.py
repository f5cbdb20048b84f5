"""Shared fixtures: the real MNIST found as firstnet finds it, an isolated Keras home, and one seed-recipe run for all tests."""

import os
import pathlib
import signal
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist.npz"
# The one reason every test that needs the full MNIST gives when it is skipped: what to set, or do, to run it.
NO_MNIST_REASON = ("needs the full MNIST (mnist.npz): set FIRSTNET_DATA=path/to/mnist.npz, or run the tests once "
                   "online so that keras downloads it to ~/.keras/datasets")


def lacking(reason):
    """Skip a test for something this machine lacks (the full MNIST, a browser), saying what to install or set.

    CI sets FIRSTNET_TESTS_STRICT=1, where the same lack fails the test instead: there nothing may go untested.
    """
    if os.environ.get("FIRSTNET_TESTS_STRICT", "") not in ("", "0"):
        pytest.fail(f"{reason} (FIRSTNET_TESTS_STRICT is set, so this fails rather than skip)", pytrace=False)
    pytest.skip(reason)


def find_full_mnist():
    """The real MNIST for the tests, found the way `firstnet train` finds it, or None.

    In order: $FIRSTNET_DATA (a mnist.npz), keras's cache (~/.keras/datasets/mnist.npz, or under $KERAS_HOME),
    ../shared/data/mnist.npz beside this checkout, and else one download through keras.datasets into keras's cache,
    unless FIRSTNET_OFFLINE is set or keras's host cannot be reached. Looked up before conftest points KERAS_HOME
    at a folder of the tests' own, so a contributor's earlier download is found and a new one is kept.
    """
    named = os.environ.get("FIRSTNET_DATA")
    if named:
        # A path the contributor set is never silently replaced by another: used if it is a file, else the reason.
        return pathlib.Path(named).expanduser() if pathlib.Path(named).expanduser().is_file() else None
    from firstnet import data

    cached = data.keras_cache_path()
    for candidate in (cached, SHARED_MNIST):
        if candidate.is_file():
            return candidate
    # firstnet's own check of keras's host, asked directly: `network_reachable` would remember the answer for the tests.
    if os.environ.get("FIRSTNET_OFFLINE", "") not in ("", "0") or not data.host_reachable(*data.DOWNLOAD_HOST):
        return None
    # keras downloads in a Python of its own: importing keras here would fix its backend and its home for the run.
    downloaded = subprocess.run([sys.executable, "-c", "from firstnet import data; data.download()"],
                                capture_output=True, text=True, timeout=300)
    return cached if downloaded.returncode == 0 and cached.is_file() else None


FULL_MNIST = find_full_mnist()

# Before anything imports keras: never read or write the user's ~/.keras, never try to download during tests
# (tests that exercise the download path patch it explicitly), and point firstnet at the real MNIST. Without it,
# FIRSTNET_DATA is empty (as good as unset, and tests may still unset it), so `firstnet` uses the bundled digits.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="firstnet-keras-home-")
os.environ["FIRSTNET_OFFLINE"] = "1"
os.environ["FIRSTNET_DATA"] = str(FULL_MNIST or "")
# firstnet keeps compiled programs and unpacked MNIST in the user's cache folder; the tests keep theirs apart.
os.environ["FIRSTNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="firstnet-cache-")
os.environ.setdefault("KERAS_BACKEND", "jax")
BACKEND = os.environ["KERAS_BACKEND"]


# The test modules that cannot differ between Keras backends, each with its reason. Every other module builds,
# trains, scores, saves or loads a Keras model, the code Keras runs differently on each backend and that changes
# between versions: its tests get the `keras` marker, and CI runs those (less browser and notebook tests) on PyTorch,
# TensorFlow and the oldest versions allowed (.ci/run). A new test module is in the `keras` set unless listed here.
BACKEND_FREE = {
    "test_benchmark.py": "the benchmark's own tooling and arithmetic; its peer scripts pin their backend",
    "test_data.py": "reading MNIST's four formats, the cache and the network check: NumPy only",
    "test_docs.py": "the README's and docs' links",
    "test_kit.py": "packaging: wheels and an offline install, in a fresh venv of its own",
    "test_layers.py": "the import contracts",
    "test_package.py": "the wheel, the sdist and their metadata: no model is built",
    "test_newcomer.py": "the command line's words and tables, read without training",
    "test_tensors.py": "NumPy views of MNIST",
    "test_hostile_files.py": "hostile data and picture files, refused by the loaders and Pillow before any model",
    "test_request_time_limit.py": "the server's time limit, with a stand-in network",
    "test_server_edges.py": "where the server listens and which files it serves",
    # The page's server: who may call what, the collection's plumbing, the live stream, a class's load. The model
    # calls it makes are the library's own (predict_digits, evaluate_model, the loops), which test_predict,
    # test_evaluate, test_train and test_loops check on every backend.
    "test_classroom.py": "the server's roles, origins and bounds, and the classroom's files",
    "test_collection_api.py": "the class collection's routes and files; its scoring is evaluate_model's",
    "test_web_api.py": "the page's routes; its answers are predict_digits'",
    "test_live.py": "the live stream's server side; the run itself is train's",
    "test_classroom_load.py": "a class's load on the real server",
    "test_server.py": "uploads and clients on the real server",
    "test_schema_fuzz.py": "generated requests against the routes' own validation",
    "test_lesson_api.py": "the page's why, fool and confusion-cell routes; the library calls behind them (explain, "
                          "fool, abstain, confusion_cell) are test_not_cognition's, on every backend",
    "test_other_hands.py": "digits drawn, scanned and prepared by NumPy and Pillow; the network reading them is "
                           "the shared trained run's",
    # Run files and folders read as data: validated before any model is built.
    "test_run_files.py": "run files validated by their schemas before any model is built",
    "test_links.py": "links, collisions, leftovers and names in folders",
    "test_shown.py": "the page's words for the server's paths: strings and pathlib only",
}

# Tests in the other modules that still cannot differ between backends, each with its reason, by the test's name
# (with its parameters, where only some of them cannot). Each runs once, on JAX.
BACKEND_FREE_TESTS = {
    "test_crash.py::test_kill_at_random_moments_never_breaks_a_run":
        "firstnet's own temp-file-then-rename under SIGKILL and Ctrl-C; resuming exactly is test_resume's, everywhere",
    "test_crash.py::test_a_full_disk_during_a_save_is_one_line_and_keeps_the_old_file": "files.py's atomic writes",
    "test_crash.py::test_a_really_full_disk_stops_train_in_one_line": "files.py's atomic writes on a real full disk",
    "test_look.py::test_cli_errors_are_one_line_and_write_nothing": "the command line's words for missing files",
    "test_cli.py::test_debug_shows_the_traceback": "the command line's --debug switch",
    "test_cli.py::test_predict_folder_as_json": "the JSON lines' form; their numbers are test_predict's, everywhere",
    "test_scratch.py::test_cli_scratch_same_seed_same_metrics_with_validation": "the NumPy twin: NumPy only",
    "test_train.py::test_ctrl_c_during_training_still_saves_the_model[scratch]": "the NumPy twin: NumPy only",
}

# The modules that call Keras's API the most widely, whole: building, saving and loading safely (test_model), both
# loops' fits, step for step (test_loops), resuming an optimizer's state (test_resume), safe mode against tampered
# archives (test_tampered_models), gradients through each backend's autodiff (test_not_cognition). CI runs them whole
# at the oldest versions allowed, beside the quick part of the `keras` set: old versions differ in their API.
API_SURFACE = {"test_model.py", "test_loops.py", "test_resume.py", "test_tampered_models.py", "test_not_cognition.py"}

# Fixtures that train a network, write a whole MNIST in another format, or start a server or a browser. A test that
# uses one is `slow` whatever its own time, since the fixture's cost falls on whichever test asks for it first. With
# the tests marked by hand (each took over a second in a whole run, measured with --durations=0), they are what the
# quick command, python -m pytest -m "not slow and not browser and not notebook", leaves out.
SLOW_FIXTURES = {"trained_run", "seed_run", "looked", "convnet_run", "scratch_run", "cli_run", "partly_trained", "uninterrupted",
                 "word_set", "csv_folders", "png_folder", "server", "served", "empty_server", "api_schema", "browser",
                 "dense", "mnist_run", "colour_photos"}


def pytest_collection_modifyitems(config, items):
    # CI runs the suite once per backend (.ci/run): each test runs everywhere unless it is about one backend.
    for item in items:
        if item.path.name not in BACKEND_FREE and f"{item.path.name}::{item.name}" not in BACKEND_FREE_TESTS:
            item.add_marker(pytest.mark.keras)
            if item.path.name in API_SURFACE:
                item.add_marker(pytest.mark.api_surface)
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        # A test that drives Chromium (a *_browser.py module, or one that asks for the browser) is a browser test,
        # so no module can forget its marker.
        if "browser" in fixtures or item.path.stem.endswith("_browser"):
            item.add_marker(pytest.mark.browser)
        marker = item.get_closest_marker("backend")
        if marker is not None and BACKEND not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"about Keras on {' or '.join(marker.args)}; "
                                                    f"this run is on {BACKEND}"))


@pytest.fixture(autouse=True)
def no_network_check(monkeypatch):
    """A test that reaches firstnet's network check without deciding its answer fails, rather than ask the network.

    Tests that exercise the download path patch `firstnet.data.network_reachable` themselves; the check's own test
    calls `host_reachable` on 127.0.0.1.
    """
    from firstnet import data

    def refuse():
        raise AssertionError("a test reached firstnet.data.network_reachable: patch it, never ask the real network")

    monkeypatch.setattr(data, "network_reachable", refuse)
    return refuse


# For a test that needs the full MNIST without asking for it: one that runs `firstnet` and its like, which find
# it through FIRSTNET_DATA above. Without the full MNIST it is skipped with NO_MNIST_REASON, like those that ask.
needs_full_mnist = pytest.mark.usefixtures("mnist_path")


@pytest.fixture(scope="session")
def mnist_path():
    if FULL_MNIST is None:
        lacking(NO_MNIST_REASON)
    return FULL_MNIST


@pytest.fixture(scope="session")
def mnist(mnist_path):
    """The real MNIST as firstnet loads it (uint8, keras's layout)."""
    from firstnet import data

    return data.load_npz(mnist_path)


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory, mnist_path):
    """`firstnet train --seed 0` run by a user in a terminal (a subprocess): the tutorial's recipe, trained once per
    test session (test_train checks this folder and output as the user gets them; `trained_run` reads a copy)."""
    workdir = tmp_path_factory.mktemp("cli_train")
    result = run_firstnet("train", "--seed", "0", "--run-dir", "run", cwd=workdir)
    return workdir / "run", result


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, seed_run, mnist):
    """The tutorial's recipe trained with seed 0 (a copy of `seed_run`'s folder, its model loaded safely); tests that
    need a trained model share it (read-only).

    It comes with its "not a digit" rule (fitted on a few non-digits of each kind), as a run that has been served or
    asked about once has: so no server or command in a test learns one in the background, writing into the folder
    that other tests read and copy.
    """
    import json
    import shutil

    from firstnet import abstain, model as firstnet_model, train

    source, result = seed_run
    if result.returncode != 0:
        raise RuntimeError(f"firstnet train --seed 0 failed:\n{result.stderr}")
    run_dir = tmp_path_factory.mktemp("runs") / "seed0"
    shutil.copytree(source, run_dir)
    model = firstnet_model.load_model(run_dir)
    trained = train.TrainResult(run_dir=run_dir, model=model,
                                history=json.loads((run_dir / "history.json").read_text()),
                                metrics=json.loads((run_dir / "metrics.json").read_text()))
    abstain.save_rule(run_dir, abstain.fit_rule(trained.model, mnist, per_kind=40))
    return trained


def as_in_a_terminal():
    """For subprocess's `preexec_fn`: Ctrl-C (SIGINT) acts as in a terminal, even where this run was started in the
    background, which makes a shell ignore SIGINT in its children (and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_firstnet(*args, cwd=None, env=None, timeout=600):
    """Run the real `python -m firstnet` in a subprocess, as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "firstnet", *map(str, args)], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
