"""What makes the `firstnet` command start fast: MNIST read as Keras imports, a compile cache, a figure helper.

Only the CLI uses this file; the lesson (train.py) takes what it prepared as arguments. Each trick here changes
how fast a run starts, never its numbers, and each falls back to the ordinary way if it fails. The lean import of
Keras leans on Keras's internals, so it sits with the other such tricks (loops/speedups/lean_import.py).
"""

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
from firstnet.loops import speedups


def prepare_training(data_path, dataset=None):
    """Start what `firstnet train` needs at once: MNIST read in a thread while Keras imports, the figure helper.

    Returns (data, figures, timings) for `train.train(..., data=data, figures=figures, timings=timings)`.
    An error in the data (a wrong --data, say) is raised here, before any run folder exists.
    """
    started = time.perf_counter()
    loading = Loading(data_path, dataset)
    figures = FigureHelper()
    try:
        _, import_seconds, fallback = speedups.import_keras(lean=True)
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

    Importing matplotlib and drawing keep a core busy for a while. On a laptop with few cores one is idle while
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
