"""The tutorial's learning loop: prepare MNIST, fit the network, evaluate it, keep it all in a run folder."""

import dataclasses
import datetime
import pathlib
import platform
import secrets
import time

import numpy as np

from firstnet import __version__, fastfit, runs, startup
from firstnet import data as mnist_data

# Keras is imported inside the functions, not at the top, so that `firstnet --help` stays fast. Two helper files
# change how fast a run goes, never its numbers: startup.py (MNIST read while Keras imports, a lean Keras import, a
# compilation cache, figures drawn by a helper process) and fastfit.py (model.fit's work compiled on JAX).
# benchmarks/ measures what each of these choices buys.


@dataclasses.dataclass
class TrainConfig:
    """The tutorial's recipe is the default: 5 epochs, batches of 128, 512 hidden units, rmsprop."""

    epochs: int = 5
    batch_size: int = 128
    hidden_units: int = 512
    optimizer: str = "rmsprop"
    learning_rate: float | None = None
    learning_rate_schedule: str = "constant"
    validation_split: float = 0.0
    seed: int | None = None
    data: str | None = None
    run_dir: str | None = None
    runs_root: str = runs.DEFAULT_RUNS_ROOT
    verbose: int = 1

    def check(self):
        """Raise ValueError with a helpful message for settings that cannot work."""
        self._check_numbers()
        from firstnet import model as firstnet_model

        firstnet_model.make_optimizer(self.optimizer)
        if self.learning_rate_schedule not in firstnet_model.SCHEDULES:
            raise ValueError(f"unknown learning rate schedule {self.learning_rate_schedule!r}; choose one of "
                             f"{', '.join(firstnet_model.SCHEDULES)}")

    def _check_numbers(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.hidden_units < 1:
            raise ValueError(f"hidden_units must be at least 1, got {self.hidden_units}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


# `firstnet train --fast`: not the tutorial's recipe but a shorter one to the same accuracy. Two epochs instead of
# five, RMSprop's learning rate starting at 0.004 instead of 0.001 and falling to 0 along a cosine, so that the
# large early steps learn fast and the small late ones settle. Over 15 seeds on the full MNIST its test accuracy
# was 0.9789 to 0.9816 (median 0.9805); the recipe's was 0.9789 to 0.9800 over 5 seeds, in over twice the time.
FAST = {"epochs": 2, "learning_rate": 0.004, "learning_rate_schedule": "cosine"}


def weight_updates(config, train_count):
    """How many weight updates a run makes: batches per epoch (after the validation split) times epochs."""
    train_count = fastfit.training_count(train_count, config.validation_split)
    return config.epochs * -(-train_count // config.batch_size)


@dataclasses.dataclass
class TrainResult:
    run_dir: object
    model: object
    history: dict
    metrics: dict


def versions():
    """Versions that decide the numbers: the same seed reproduces a run only with the same ones."""
    import importlib.metadata

    found = {"python": platform.python_version(), "firstnet": __version__}
    for package in ("keras", "numpy", "jax", "jaxlib", "tensorflow", "torch"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def train(config=None, data=None, log=None):
    """Run the whole lesson once; see `_train` (this wrapper only removes a run folder left empty by a failure)."""
    started = time.perf_counter()
    config = config or TrainConfig()
    config._check_numbers()
    # MNIST is read in a thread while Keras imports: unzipping the file releases the interpreter lock.
    loading = None if data is not None else startup.Loading(config.data)
    figures = startup.FigureHelper() if startup.LEAN_KERAS_IMPORT else None
    try:
        _, import_seconds = startup.import_keras(lean=startup.LEAN_KERAS_IMPORT)
        config.check()
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        # A run that fails (a wrong --data, say) must not leave folders behind that it created, runs/ included.
        parent = pathlib.Path(config.run_dir).parent if config.run_dir else pathlib.Path(config.runs_root)
        new_parent = not parent.exists()
        run_dir = runs.new_run_dir(config.run_dir, root=config.runs_root)
    except BaseException:
        if figures:
            figures.stop()
        raise
    try:
        return _train(config, data, loading, seed, run_dir, log or (lambda line: None), started, import_seconds,
                      figures)
    except BaseException:
        if figures:
            figures.stop()
        for folder in (run_dir, parent) if new_parent else (run_dir,):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _train(config, data, loading, seed, run_dir, log, started, import_seconds, figures=None):
    """Run the whole lesson once and return the run folder, the trained model, its history and its metrics.

    `data` may be an `Mnist` already loaded (the notebook and the tests pass one); otherwise `config.data` or
    the default sources are used.
    """
    started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    import keras

    cache_folder = startup.enable_compilation_cache()
    from firstnet import evaluate, model as firstnet_model

    phase_started = time.perf_counter()
    data = data or loading.result()
    data_seconds = loading.seconds if loading else 0.0
    data_wait_seconds = time.perf_counter() - phase_started
    optimizer = config.optimizer
    if config.learning_rate_schedule != "constant":
        optimizer += (f" (learning rate {config.learning_rate or 'default'}, {config.learning_rate_schedule} "
                      f"decay to 0)")
    log(f"Training Dense({config.hidden_units}, relu) -> Dense(10, softmax) on {len(data.x_train)} digits "
        f"({data.source}): {config.epochs} epochs, batch {config.batch_size}, {optimizer}, seed {seed}")

    # One seed drives the initial weights, the shuffling and the validation split, so a run can be repeated.
    keras.utils.set_random_seed(seed)
    model = firstnet_model.build_model(hidden_units=config.hidden_units)
    firstnet_model.compile_model(model, optimizer=config.optimizer, learning_rate=config.learning_rate,
                                 schedule=config.learning_rate_schedule,
                                 decay_steps=weight_updates(config, len(data.x_train)))

    phase_started = time.perf_counter()
    # On JAX the compiled loop computes the same thing as model.fit, faster; elsewhere it is model.fit itself.
    fit = fastfit.fit if fastfit.supported(model) else fit_with_keras
    history, interrupted, loop = fit(model, data, config, seed)
    fit_seconds = time.perf_counter() - phase_started
    if figures:
        figures.draw("curves", run_dir / "curves.png", history)

    phase_started = time.perf_counter()
    scores = evaluate.evaluate_model(model, data.x_test, data.y_test, verbose=config.verbose)
    evaluate_seconds = time.perf_counter() - phase_started

    metrics = {
        "test_accuracy": scores["test_accuracy"],
        "test_loss": scores["test_loss"],
        "train_accuracy": history["accuracy"][-1] if history.get("accuracy") else None,
        "train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": config.epochs,
        "epochs_completed": len(history.get("loss", [])),
        "interrupted": interrupted,
        "batch_size": config.batch_size,
        "hidden_units": config.hidden_units,
        "optimizer": config.optimizer,
        "learning_rate": firstnet_model.starting_learning_rate(model.optimizer),
        "learning_rate_schedule": config.learning_rate_schedule,
        "validation_split": config.validation_split,
        "seed": seed,
        "backend": keras.backend.backend(),
        "training_loop": "compiled epochs (model.stateless_call)" if fit is fastfit.fit else "model.fit",
        # Pixels per digit in the first layer's products: fewer than all when blank ones are skipped (blanks.py).
        "first_layer_columns": loop["first_layer_columns"],
        "compilation_cache": str(cache_folder) if cache_folder else None,
        "versions": versions(),
        "data_source": data.source,
        "data_full": data.is_full,
        "train_samples": int(len(data.x_train)),
        "test_samples": int(len(data.x_test)),
        "confusion": scores["confusion"].tolist(),
        "import_seconds": import_seconds,
        "data_seconds": data_seconds,
        "data_wait_seconds": data_wait_seconds,
        "compile_seconds": loop["compile_seconds"],
        "fit_seconds": fit_seconds,
        "evaluate_seconds": evaluate_seconds,
        "started_at": started_at,
        "run_dir": str(run_dir),
    }
    if figures:
        figures.draw("confusion", run_dir / "confusion.png", metrics["confusion"])
    save_run(run_dir, model, history, metrics, started, figures=figures)
    return TrainResult(run_dir=run_dir, model=model, history=history, metrics=metrics)


def fit_with_keras(model, data, config, seed):
    """The tutorial's own code: float32 pixels in 0..1, one-hot labels, `model.fit`. Used on TensorFlow and torch."""
    import keras

    train_images = mnist_data.prepare_images(data.x_train)
    train_labels = keras.utils.to_categorical(data.y_train, num_classes=10)
    interrupted = False
    try:
        model.fit(train_images, train_labels, epochs=config.epochs, batch_size=config.batch_size,
                  validation_split=config.validation_split, verbose=config.verbose)
    except KeyboardInterrupt:
        # A learner who stops training early still gets the model trained so far, evaluated and saved.
        interrupted = True
        print("\nInterrupted: evaluating and saving the model as trained so far (Ctrl-C again to abandon it).")
    history = getattr(model.history, "history", None) or {}
    return ({key: [float(value) for value in values] for key, values in history.items()}, interrupted,
            {"compile_seconds": None, "first_layer_columns": None})


def save_run(run_dir, model, history, metrics, started, *, figures=None):
    """Write a run folder, each file atomically: model.keras, history.json, curves.png, confusion.png, metrics.json.

    `metrics` must hold "confusion"; this adds save_seconds, finished_at and total_seconds (from `started`, a
    time.perf_counter() value). metrics.json is written last: its presence marks the run as complete.
    `figures`, a `startup.FigureHelper` asked to draw both figures, is waited for; if it failed they are drawn here.
    """
    phase_started = time.perf_counter()
    runs.save_model(model, run_dir / "model.keras")
    runs.write_json(run_dir / "history.json", history)
    metrics["figures_drawn_by"] = "helper process" if figures and figures.finish() else "this process"
    if metrics["figures_drawn_by"] == "this process":
        from firstnet import plots

        runs.save_figure(plots.curves_figure(history), run_dir / "curves.png")
        runs.save_figure(plots.confusion_figure(np.asarray(metrics["confusion"])), run_dir / "confusion.png")
    metrics["save_seconds"] = time.perf_counter() - phase_started
    metrics["finished_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    metrics["total_seconds"] = time.perf_counter() - started
    runs.write_json(run_dir / "metrics.json", metrics)
