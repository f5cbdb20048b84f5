"""How `firstnet train` starts fast: MNIST read as Keras imports, a lean import, a compile cache, a figure helper."""

import gc
import importlib
import importlib.abc
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import types

import numpy as np

from firstnet import runs
from firstnet import data as mnist_data

# `firstnet train` sets this to True: its process never uses Keras's scikit-learn wrappers, pandas inputs, notebook
# display or plotting helpers, so hiding those optional packages while Keras imports saves over a second, and the
# run's figures are drawn by a helper process on the core that is idle meanwhile (see `FigureHelper`). A library
# user (a notebook, the tests) keeps the full Keras, because there the same Python session may go on to use them.
LEAN_KERAS_IMPORT = False
OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ("sklearn", "pandas", "IPython", "matplotlib")

# Modules that Keras imports at start-up and a training run never uses, or only once it saves the model, each
# with the submodules Keras imports from it: TPU attention kernels (Pallas), JAX's sparse solvers (which bring in
# SciPy's sparse package), the TPU and GPU kernel dialects (Mosaic), the table printer of `model.summary` (rich),
# and the HDF5 library and memory probe that saving uses (h5py, psutil). Together they are about a quarter of the
# Keras import. The lean import defers them to their first use; saving then imports h5py while the figure helper
# draws, instead of before training.
MODULES_A_RUN_USES_NOT = {
    "jax.experimental.pallas.ops.tpu.splash_attention": ("splash_attention_kernel", "splash_attention_mask"),
    "jax.experimental.sparse.linalg": (),
    "jaxlib.mosaic": ("python", "python.tpu", "python.mosaic_gpu"),
    "rich": ("console", "markup", "table"),
    "h5py": (),
    "psutil": (),
}


class Loading(threading.Thread):
    """`load_mnist` in a background thread; `result()` waits for it and raises what it raised."""

    def __init__(self, path):
        super().__init__(name="firstnet-load-mnist", daemon=True)
        self.path = path
        self.data = self.error = None
        self.seconds = 0.0
        self.start()

    def run(self):
        started = time.perf_counter()
        try:
            self.data = mnist_data.load_mnist(self.path)
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


class _Deferred(types.ModuleType):
    """A stand-in for a module not imported yet: the first use of any of its names imports the real one."""

    def __init__(self, name, group):
        super().__init__(name)
        self._group = group

    def __getattr__(self, attribute):
        # Python's import machinery asks modules for __spec__, __path__ and the like; those are not a use.
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for stand_in in self._group:
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attribute)


def _defer_modules(modules):
    """Put stand-ins for `modules` ({package: submodules imported from it}) not imported yet in sys.modules.

    Only for modules that are installed: a stand-in for a missing one would turn Keras's `import psutil` (say),
    which it tries and does without, into an import that works and a failure at the first use.
    """
    for package, submodules in modules.items():
        names = [package] + [f"{package}.{submodule}" for submodule in submodules]
        if any(name in sys.modules for name in names) or not all(_installed(name) for name in names):
            continue
        group = []
        stand_ins = {name: _Deferred(name, group) for name in names}
        group.extend(stand_ins.values())
        # Each submodule is an attribute of its parent too, as after a real import: `import a.b.c as d` needs it.
        for name in names[1:]:
            parent, _, attribute = name.rpartition(".")
            setattr(stand_ins[parent], attribute, stand_ins[name])
        sys.modules.update(stand_ins)


def _installed(name):
    """Whether module `name` is installed, found from its top-level package's folders without importing anything."""
    top, *inner = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None or not inner:
        return spec is not None
    folders = spec.submodule_search_locations or []
    return any(pathlib.Path(folder, *inner).is_dir() or pathlib.Path(folder, *inner).with_suffix(".py").is_file()
               for folder in folders)


def import_keras(lean=False):
    """Import keras (its backend chosen by firstnet/__init__.py) and return it with the seconds it took.

    `lean=True`, on the JAX backend, hides scikit-learn, pandas, IPython and matplotlib while keras imports, when
    none is imported yet: Keras then leaves out its scikit-learn wrappers, pandas inputs, notebook display and
    plotting helpers for this process (they can still be imported afterwards). Other backends import things of
    their own that look for these packages, so they get the ordinary import; so does Keras, should a future
    release need one of them. It also defers `MODULES_A_RUN_USES_NOT` to their first use, pauses Python's
    cycle collector while Keras imports, and lets JAX's plugin search read only packages named jax...
    """
    started = time.perf_counter()
    if "keras" in sys.modules:
        import keras

        return keras, 0.0
    lean = lean and os.environ.get("KERAS_BACKEND") == "jax"
    hidden = [name for name in OPTIONAL_PACKAGES_KERAS_NEEDS_NOT if name not in sys.modules] if lean else []
    if lean:
        _defer_modules(MODULES_A_RUN_USES_NOT)
    # Python's cycle collector would walk the objects of every module imported so far, again and again, as the
    # import creates more: a sixth of the import's time. Modules live as long as the process, so in the lean
    # import the collector waits until the import is done, and then leaves those objects out of its work.
    collecting = lean and gc.isenabled()
    if collecting:
        gc.disable()
    if lean:
        metadata = importlib.import_module("importlib.metadata")
        all_distributions = metadata.distributions
        metadata.distributions = _jax_distributions_only(all_distributions)
    try:
        _import_keras(hidden)
    finally:
        if lean:
            metadata.distributions = all_distributions
        if collecting:
            gc.freeze()
            gc.enable()
    import keras

    return keras, time.perf_counter() - started


def _jax_distributions_only(distributions):
    """`importlib.metadata.distributions`, narrowed to the installed packages whose names start with "jax".

    As it imports, JAX looks for a ROCm GPU plugin (a package named jax-rocm...-plugin) by reading the metadata
    of every installed package: a tenth of the Keras import in firstnet's own environment. Only packages named
    jax... can match, and their names are known from their folders without reading anything. JAX is the only
    caller while Keras imports (a test checks that), so the narrowed list is what JAX would have found.
    """

    def jax_distributions(**selection):
        for distribution in distributions(**selection):
            # Installed packages (PathDistribution) know their name from their .dist-info folder's name.
            name = getattr(distribution, "_normalized_name", None) or distribution.metadata.get("Name", "")
            if name.lower().startswith("jax"):
                yield distribution

    return jax_distributions


def _import_keras(hidden):
    if hidden:
        hook = _HidePackages(hidden)
        sys.meta_path.insert(0, hook)
        try:
            import keras
        except ImportError as error:
            if "hidden while keras imports" not in str(error):
                raise
            # Forget the half-imported Keras and import it whole.
            for name in [name for name in sys.modules if name == "keras" or name.startswith("keras.")]:
                del sys.modules[name]
        finally:
            sys.meta_path.remove(hook)
    import keras  # noqa: F401


def compilation_cache_dir():
    """Where firstnet keeps compiled programs between runs (see `runs.cache_folder`), or None when caching is off."""
    return runs.cache_folder("jax")


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
    folder = compilation_cache_dir()
    if folder is None or not runs.private_writable_folder(folder):
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

    from firstnet import plots

    for line in sys.stdin:
        job = json.loads(line)
        if job["figure"] == "curves":
            figure = plots.curves_figure(job["numbers"])
        else:
            figure = plots.confusion_figure(np.asarray(job["numbers"]))
        runs.save_figure(figure, pathlib.Path(job["path"]))
    sys.stdout.flush()
    os._exit(0)
