"""Keras imported faster and quieter: its optional packages hidden while it imports, the cycle collector paused,
and TensorFlow's start-up lines kept off stderr. Each falls back to the ordinary import if it fails.
"""

import gc
import importlib.abc
import os
import sys
import tempfile
import time

from firstnet.errors import first_line

# `firstnet train` never uses Keras's scikit-learn wrappers, pandas inputs, notebook display or plotting helpers,
# so hiding those optional packages while Keras imports saves a good part of its import time (benchmarks/RESULTS.md
# measures it), and the run's figures are drawn by a helper process meanwhile (`startup.FigureHelper`). A library
# user (a notebook, the tests) keeps the full Keras, because there the same Python session may go on to use them.
OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ("sklearn", "pandas", "IPython", "matplotlib")


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
