"""What makes the `firstnet` command start fast: MNIST read as Keras imports, a lean import, a compile cache, a figure helper.

Only the CLI uses this file; the lesson (train.py) takes what it prepared as arguments. Each trick here changes
how fast a run starts, never its numbers, and each falls back to the ordinary way if it fails.
"""

import gc
import importlib.abc
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np

from firstnet import files, plots
from firstnet.data import load_dataset
from firstnet.errors import first_line

# `firstnet train` never uses Keras's scikit-learn wrappers, pandas inputs, notebook display or plotting helpers,
# so hiding those optional packages while Keras imports saves most of a second (benchmarks/RESULTS.md), and the
# run's figures are drawn by a helper process on the core that is idle meanwhile (see `FigureHelper`). A library
# user (a notebook, the tests) keeps the full Keras, because there the same Python session may go on to use them.
OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ("sklearn", "pandas", "IPython", "matplotlib")


def prepare_training(data_path, dataset=None):
    """Start what `firstnet train` needs at once: MNIST read in a thread while Keras imports, the figure helper.

    Returns (data, figures, timings) for `train.train(..., data=data, figures=figures, timings=timings)`.
    An error in the data (a wrong --data, say) is raised here, before any run folder exists.
    """
    started = time.perf_counter()
    loading = Loading(data_path, dataset)
    figures = FigureHelper()
    try:
        _, import_seconds, fallback = import_keras(lean=True)
        cache = enable_compilation_cache()
        data = loading.result()
    except BaseException:
        figures.stop()
        raise
    timings = {"started": started, "import_seconds": import_seconds, "data_seconds": loading.seconds,
               "compilation_cache": str(cache) if cache else None, "fallbacks": [fallback] if fallback else []}
    return data, figures, timings


class Loading(threading.Thread):
    """`load_mnist` in a background thread; `result()` waits for it and raises what it raised."""

    def __init__(self, path, dataset=None):
        super().__init__(name="firstnet-load-mnist", daemon=True)
        self.path, self.dataset = path, dataset
        self.data = self.error = None
        self.seconds = 0.0
        self.start()

    def run(self):
        started = time.perf_counter()
        try:
            self.data = load_dataset(self.path, dataset=self.dataset)
        except BaseException as error:  # Handed to the main thread, which raises it.
            self.error = error
        self.seconds = time.perf_counter() - started

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.data


class _HidePackages(importlib.abc.MetaPathFinder):
    """An import hook under which `import sklearn` (say) fails as if the package were not installed."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name} is hidden while keras imports")
        return None


# What TensorFlow's C++ side prints on stderr as it loads, before anything can turn its logging off: not ours, not
# actionable, and it would break the promise that a mistake is one line.
TENSORFLOW_START_UP_NOISE = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
                             "cpu_feature_guard", "To enable the following instructions", "rebuild TensorFlow with")


def import_keras_quietly():
    """Import keras on TensorFlow with its start-up log lines filtered out of stderr; any other line still shows.

    The lines come from TensorFlow's shared libraries as they load, past TF_CPP_MIN_LOG_LEVEL, so the file
    descriptor itself is caught while Keras imports.
    """
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import keras  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        lines = caught.read().decode("utf-8", errors="replace").splitlines()
    for line in lines:
        if line.strip() and not any(noise in line for noise in TENSORFLOW_START_UP_NOISE):
            print(line, file=sys.stderr)


def import_keras(lean=False):
    """Import keras (its backend chosen by firstnet/__init__.py); return it, the seconds it took, and any fallback.

    `lean=True`, on the JAX backend, hides scikit-learn, pandas, IPython and matplotlib while keras imports, when
    none is imported yet: Keras then leaves out its scikit-learn wrappers, pandas inputs, notebook display and
    plotting helpers for this process (they can still be imported afterwards). Other backends import things of
    their own that look for these packages, so they get the ordinary import. If the lean import fails in any way
    (a Keras release that needs one of them, say), Keras is imported the ordinary way and the fallback is named.
    """
    started = time.perf_counter()
    if "keras" in sys.modules:
        import keras

        return keras, 0.0, None
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        import_keras_quietly()
    lean = lean and os.environ.get("KERAS_BACKEND") == "jax"
    hidden = [name for name in OPTIONAL_PACKAGES_KERAS_NEEDS_NOT if name not in sys.modules] if lean else []
    fallback = None
    # Python's cycle collector would walk the objects of every module imported so far, again and again, as the
    # import creates more. Modules live as long as the process, so the collector waits until the import is
    # done, and then leaves those objects out of its work (gc.freeze).
    collecting = lean and gc.isenabled()
    if collecting:
        gc.disable()
    try:
        if hidden:
            fallback = _import_hiding(hidden)
        import keras
    finally:
        if collecting:
            gc.freeze()
            gc.enable()
    return keras, time.perf_counter() - started, fallback


def _import_hiding(hidden):
    """Import keras with `hidden` packages hidden; on any failure, forget the half-import and say why (else None)."""
    hook = _HidePackages(hidden)
    sys.meta_path.insert(0, hook)
    try:
        import keras  # noqa: F401
        return None
    except Exception as error:
        for name in [name for name in sys.modules if name == "keras" or name.startswith("keras.")]:
            del sys.modules[name]
        return f"lean Keras import off ({type(error).__name__}: {first_line(error)})"
    finally:
        sys.meta_path.remove(hook)


def compilation_cache_dir():
    """Where firstnet keeps compiled programs between runs (see `files.cache_folder`), or None when caching is off."""
    return files.cache_folder("jax")


# Before 0.10, jaxlib writes dozens of C++ log lines on stderr each time it loads a program from the cache
# ("Loading XLA:CPU AOT result. Target machine feature ... is not supported"), past TF_CPP_MIN_LOG_LEVEL; a
# learner's one-line error would drown in them. Those versions compile afresh each run instead.
QUIET_CACHE_SINCE = (0, 10)


def cache_is_quiet(version):
    """Whether JAX `version` loads cached programs without writing log lines (0.10 and later)."""
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= QUIET_CACHE_SINCE
    except ValueError:
        return False


def enable_compilation_cache():
    """Keep JAX's compiled programs on disk, so a second `firstnet train` skips most of the compile time.

    Returns the folder used, or None when the cache stays off: another backend than JAX, a cache the user set up
    (JAX_COMPILATION_CACHE_DIR or jax.config), FIRSTNET_CACHE_DIR=off, or a folder that cannot be used safely.
    A program loaded from the cache is the same program: results do not change.
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    if jax.config.jax_compilation_cache_dir:
        return pathlib.Path(jax.config.jax_compilation_cache_dir)
    if not cache_is_quiet(jax.__version__):
        return None
    folder = compilation_cache_dir()
    if folder is None or not files.private_writable_folder(folder):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # The lesson's programs compile in well under JAX's default threshold of one second; keep them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.config.jax_compilation_cache_max_size == -1 and importlib.util.find_spec("filelock"):
        # JAX can bound its cache only with filelock installed; each program of the lesson takes about 1 MB.
        jax.config.update("jax_compilation_cache_max_size", 512 * 1024 * 1024)
    return folder


class FigureHelper:
    """A helper process that draws the run's two figures (curves.png, confusion.png) while this one trains.

    Importing matplotlib and drawing take about a second of one core. On a 2-core laptop one core is idle while
    Keras imports and while the test digits are scored, so the helper imports matplotlib at once and draws each
    figure as soon as its numbers are known. It runs in its own session, so a Ctrl-C that stops training early
    does not stop it. If anything goes wrong with it, `save_run` draws the figures itself, as before.
    """

    where = "helper process"

    def __init__(self):
        self.failed = False
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from firstnet import startup; startup._draw_figures()"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True)
        except OSError:
            self.process, self.failed = None, True

    def draw(self, figure, path, numbers):
        if self.failed:
            return
        try:
            self.process.stdin.write(json.dumps({"figure": figure, "path": str(path), "numbers": numbers}) + "\n")
            self.process.stdin.flush()
        except OSError:
            self.failed = True

    def finish(self, timeout=60):
        """Wait for the figures; True if the helper drew them all."""
        if self.failed:
            self.stop()
            return False
        try:
            self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.stop()
            return False
        self.failed = self.process.returncode != 0
        return not self.failed

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.failed = True


def _draw_figures():
    """The helper's side of `FigureHelper`: import matplotlib now, then draw each figure asked for on stdin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (the slow part, done before the first figure is asked for)

    for line in sys.stdin:
        job = json.loads(line)
        if job["figure"] == "curves":
            figure = plots.curves_figure(job["numbers"])
        else:
            numbers = job["numbers"]
            figure = plots.confusion_figure(numbers if isinstance(numbers, dict) else np.asarray(numbers))
        plots.save_figure(figure, pathlib.Path(job["path"]))
    sys.stdout.flush()
    os._exit(0)
