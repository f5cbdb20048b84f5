"""Run folders and atomic writes: every file a user cares about appears whole or not at all."""

import contextlib
import datetime
import errno
import importlib.metadata
import json
import os
import pathlib
import platform
import tempfile
import time

from firstnet.errors import UserError

DEFAULT_RUNS_ROOT = "runs"


@contextlib.contextmanager
def atomic_path(path, sync=True):
    """Yield a temporary path beside `path`; when the block succeeds, move it over `path` in one rename.

    The temporary file lives in the same folder so the rename never crosses file systems, and it keeps the
    suffix of the target because some writers (Keras, matplotlib) choose the format by suffix. `sync=False`
    skips writing it through to the disk first: for caches, whose readers check what they read.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(descriptor)
    try:
        yield pathlib.Path(temporary)
        if sync:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); a run's files should be readable like any file the user saves.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        # A full disk is the user's to fix, and the file before is still whole: one line, not a traceback.
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"{path}: the disk is full (no space left to write it); the previous file, if any, is "
                            "untouched: free some space and try again") from error
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask():
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(path, data, sync=True):
    with atomic_path(path, sync=sync) as temporary:
        temporary.write_bytes(data)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_model(model, path):
    """Keras writes its zip in place, so a crash mid-save would break the old model; write beside it, then rename."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def save_figure(figure, path, dpi=110):
    """Save a matplotlib figure as PNG, trimmed to what it shows unless the figure lays itself out."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches=None if figure.get_layout_engine() else "tight")
    plt.close(figure)


def cache_folder(kind):
    """Where firstnet keeps `kind` between runs ("jax": compiled programs, "mnist": unpacked data), or None.

    $FIRSTNET_CACHE_DIR/<kind>, else the user's cache folder: ~/.cache/firstnet/<kind> (or under $XDG_CACHE_HOME).
    FIRSTNET_CACHE_DIR=off (or 0, or an empty value) turns caching off.
    """
    chosen = os.environ.get("FIRSTNET_CACHE_DIR")
    if chosen is not None:
        if chosen.strip().lower() in ("", "0", "off", "no", "false"):
            return None
        return pathlib.Path(chosen).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "firstnet" / kind


def private_writable_folder(folder):
    """Create `folder` for this user only; True if it can be written and no other user can write to it.

    What firstnet reads back from its caches (compiled programs JAX runs, digits it trains on) must be what it
    wrote there itself, so a cache folder that others can write to is refused.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
        if hasattr(os, "getuid") and (status.st_uid != os.getuid() or status.st_mode & 0o022):
            return False
        with open(folder / f".probe-{os.getpid()}", "wb") as probe:
            probe.write(b"ok")
        os.unlink(probe.name)
        return True
    except OSError:
        return False


def new_run_dir(run_dir=None, root=DEFAULT_RUNS_ROOT):
    """Create a fresh run folder: `run_dir` if given and empty, else `runs/<date>_<time>`; never reuse a full one."""
    if run_dir is not None:
        run_dir = pathlib.Path(run_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UserError(f"--run-dir {run_dir}: already exists and is not empty; choose a new folder so nothing is overwritten")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    for attempt in range(1000):
        candidate = pathlib.Path(root) / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"{root}: could not create a new run folder; pass --run-dir")


@contextlib.contextmanager
def new_run(run_dir=None, root=DEFAULT_RUNS_ROOT, resume=None):
    """`new_run_dir`, and if the block fails (a wrong --data, say), no folder left behind that it created, runs/ included.

    `resume` names an existing run folder to go on in (`firstnet train --resume`); it is never removed.
    """
    if resume is not None:
        remove_unfinished_writes(pathlib.Path(resume))
        yield pathlib.Path(resume)
        return
    parent = pathlib.Path(run_dir).parent if run_dir else pathlib.Path(root)
    created_parent = not parent.exists()
    folder = new_run_dir(run_dir, root=root)
    try:
        yield folder
    except BaseException:
        for created in (folder, parent) if created_parent else (folder,):
            if created.is_dir() and not any(created.iterdir()):
                created.rmdir()
        raise


def remove_unfinished_writes(folder):
    """Delete the temporary files of writes a crash cut short (`atomic_path`'s `.<name>.<random>.tmp<suffix>`).

    Such a file never replaced the real one, so it holds nothing a run needs; left alone it would only take space.
    """
    for leftover in folder.glob(".*.tmp*"):
        if leftover.is_file():
            leftover.unlink()


# Versions that decide the numbers: the same seed reproduces a run only with the same ones. TensorFlow's CPU
# build installs as tensorflow-cpu, so both names are looked up.
PACKAGES = ("keras", "numpy", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "torch")


def versions():
    """The versions of Python, firstnet and each installed package of PACKAGES."""
    from firstnet import __version__

    found = {"python": platform.python_version(), "firstnet": __version__}
    for package in PACKAGES:
        try:
            found[package.replace("-cpu", "")] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def run_metrics(config, seed, data, fitted, scores, *, model=None, backend=None, timings=None):
    """metrics.json's contents for a run of `train` or `scratch`: the recipe, how it ran, its scores, its data.

    `fitted` is a `loops.Fitted`; `scores` what `evaluate.evaluate_model` returns; `model` gives the learning
    rate the optimizer really started from and the backend (or pass `backend`, for the NumPy twin).
    """
    from firstnet import loops

    timings = dict(timings or {})
    if model is not None:
        import keras

        from firstnet import model as firstnet_model

        learning_rate = firstnet_model.starting_learning_rate(model.optimizer)
        backend = backend or keras.backend.backend()
    else:
        learning_rate = config.learning_rate
    history = fitted.history
    return {
        "test_accuracy": scores["test_accuracy"],
        "test_loss": scores["test_loss"],
        "train_accuracy": history["accuracy"][-1] if history.get("accuracy") else None,
        "train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": config.epochs,
        "epochs_completed": len(history.get("loss", [])),
        "interrupted": fitted.interrupted,
        "batch_size": config.batch_size,
        "hidden_units": config.hidden_units,
        "optimizer": config.optimizer,
        # Keras keeps the rate as a float32 variable; its shortest decimal is what the learner typed.
        "learning_rate": float(f"{learning_rate:.7g}") if learning_rate is not None else None,
        "learning_rate_schedule": config.learning_rate_schedule,
        "validation_split": config.validation_split,
        "seed": seed,
        "backend": backend,
        "loop": fitted.loop,
        "training_loop": loops.DESCRIPTIONS.get(fitted.loop, fitted.loop),
        "loop_asked": config.loop,
        "speedups": fitted.facts.get("speedups", []),
        # Every speed trick that failed and fell back to the public path: the lean import, the loop, the scoring.
        "fallbacks": (timings.pop("fallbacks", []) + fitted.facts.get("fallbacks", [])
                      + ([scores["fallback"]] if scores.get("fallback") else [])),
        # Pixels per digit in the first layer's products: fewer than all when blank ones are skipped (blanks.py).
        "devices": fitted.facts.get("devices"),
        "distribution": fitted.facts.get("distribution"),
        "first_layer_columns": fitted.facts.get("first_layer_columns"),
        # Where `firstnet train --resume` took the run up again (epoch, steps done in it), or None.
        "resumed_from": fitted.facts.get("resumed_from"),
        "versions": versions(),
        "data_source": data.source,
        "data_path": data.path,
        # What was trained on what: the model family, the set by name, its class names (label i is
        # class_names[i]), one picture's shape, and how pictures were made arrays (predict prepares its own so).
        "model": getattr(config, "model", "dense"),
        "dataset": getattr(data, "dataset", "mnist"),
        "class_names": list(getattr(data, "class_names", [str(digit) for digit in range(10)])),
        "image_shape": list(data.x_train.shape[1:]),
        "preparation": getattr(data, "preparation", "mnist"),
        "data_full": data.is_full,
        "train_samples": int(len(data.x_train)),
        "test_samples": int(len(data.x_test)),
        "confusion": scores["confusion"].tolist(),
        "compilation_cache": timings.pop("compilation_cache", None),
        "import_seconds": timings.pop("import_seconds", None),
        "data_seconds": timings.pop("data_seconds", None),
        "compile_seconds": fitted.facts.get("compile_seconds"),
        "fit_seconds": fitted.facts["fit_seconds"],
        "evaluate_seconds": scores.get("seconds"),
        "process_started": timings.pop("started", None),
        "started_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


class DrawFiguresHere:
    """Draws a run's figures in this process, when asked to finish (the CLI hands `save_run` a helper process instead)."""

    where = "this process"

    def __init__(self):
        self.jobs = []

    def draw(self, figure, path, numbers):
        self.jobs.append((figure, path, numbers))

    def finish(self):
        import numpy as np

        from firstnet import plots

        for figure, path, numbers in self.jobs:
            drawn = (plots.curves_figure(numbers) if figure == "curves" else
                     plots.confusion_figure(numbers if isinstance(numbers, dict) else np.asarray(numbers)))
            save_figure(drawn, path)
        return True


def save_run(run_dir, model, history, metrics, *, figures=None):
    """Write a run folder, each file atomically: model.keras, history.json, curves.png, confusion.png, metrics.json.

    metrics.json is written last: its presence marks the run as complete. `figures` draws the two figures while
    the model is saved (the CLI passes `startup.FigureHelper`, a helper process); if it fails, they are drawn here.
    """
    started = time.perf_counter()
    run_dir = pathlib.Path(run_dir)

    def ask(drawer):
        drawer.draw("curves", run_dir / "curves.png", history)
        names = metrics.get("class_names")
        # Named classes (your own pictures, Fashion-MNIST) label the matrix by name; MNIST's stay digits.
        drawer.draw("confusion", run_dir / "confusion.png", {"matrix": metrics["confusion"], "class_names": names}
                    if names and names != [str(digit) for digit in range(10)] else metrics["confusion"])
        return drawer

    figures = ask(figures or DrawFiguresHere())
    save_model(model, run_dir / "model.keras")
    write_json(run_dir / "history.json", history)
    if not figures.finish():
        figures = ask(DrawFiguresHere())
        figures.finish()
    metrics["figures_drawn_by"] = figures.where
    metrics["save_seconds"] = time.perf_counter() - started
    metrics["finished_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    process_started = metrics.pop("process_started", None)
    metrics["total_seconds"] = (time.perf_counter() - process_started if process_started is not None else
                                sum(metrics.get(key) or 0.0 for key in ("fit_seconds", "evaluate_seconds", "save_seconds")))
    write_json(run_dir / "metrics.json", metrics)


def read_metrics(run_dir):
    path = pathlib.Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_runs(root=DEFAULT_RUNS_ROOT):
    """Finished runs (those with a metrics.json and a model.keras), oldest first."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir()):
        metrics = read_metrics(folder) if folder.is_dir() else None
        if metrics is not None and (folder / "model.keras").is_file():
            runs.append((folder, metrics))
    runs.sort(key=lambda run: (run[1].get("finished_at", ""), str(run[0])))
    return runs


def latest_run(root=DEFAULT_RUNS_ROOT):
    runs = list_runs(root)
    if not runs:
        raise UserError(f"no trained model in {root}/; run `firstnet train` first, or pass --model RUN_DIR")
    return runs[-1][0]


def resolve_model(model=None, root=DEFAULT_RUNS_ROOT):
    """Path of the model.keras to use: the one named (a run folder or a .keras file) or the newest run's."""
    if model is None:
        return latest_run(root) / "model.keras"
    model = pathlib.Path(model)
    return model / "model.keras" if model.is_dir() else model
