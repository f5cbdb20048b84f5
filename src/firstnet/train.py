"""The learning loop of the tutorial: prepare MNIST, fit the network, evaluate it, keep it all in a run folder.

Keras is imported inside the functions, not at the top: `train()` starts reading MNIST in a thread first, so the
file is decompressed while Keras and JAX import (about a second on a 2-core laptop). On JAX, `model.fit`'s work
runs as one compiled program per epoch (`_fit_compiled`); benchmarks/ measures what each of these choices buys.
"""

import dataclasses
import datetime
import importlib.abc
import importlib.util
import json
import os
import pathlib
import platform
import secrets
import subprocess
import sys
import threading
import time

import numpy as np

from firstnet import __version__, runs
from firstnet import data as mnist_data

# `firstnet train` sets this to True: its process never uses Keras's scikit-learn wrappers, pandas inputs, notebook
# display or plotting helpers, so hiding those optional packages while Keras imports saves over a second, and the
# run's figures are drawn by a helper process on the core that is idle meanwhile (see `_FigureHelper`). A library
# user (a notebook, the tests) keeps the full Keras, because there the same Python session may go on to use them.
LEAN_KERAS_IMPORT = False
OPTIONAL_PACKAGES_KERAS_NEEDS_NOT = ("sklearn", "pandas", "IPython", "matplotlib")

# Batches of the training loop that run as one call to the compiled program between two progress-bar updates.
STEPS_PER_CALL = 50

# The tutorial's `astype("float32") / 255` of each of the 256 pixel values, computed by NumPy. Compiled code looks
# pixels up here: XLA turns a division by 255 into a multiplication, one unit in the last place off for half of them.
PIXEL_VALUES = np.arange(256, dtype=np.float32) / 255


@dataclasses.dataclass
class TrainConfig:
    """The tutorial's recipe is the default: 5 epochs, batches of 128, 512 hidden units, rmsprop."""

    epochs: int = 5
    batch_size: int = 128
    hidden_units: int = 512
    optimizer: str = "rmsprop"
    learning_rate: float | None = None
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
    loading = None if data is not None else _Loading(config.data)
    figures = _FigureHelper() if LEAN_KERAS_IMPORT else None
    try:
        _, import_seconds = import_keras(lean=LEAN_KERAS_IMPORT)
        config.check()
        seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
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
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


class _Loading(threading.Thread):
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


def import_keras(lean=False):
    """Import keras (its backend chosen by firstnet/__init__.py) and return it with the seconds it took.

    `lean=True`, on the JAX backend, hides scikit-learn, pandas, IPython and matplotlib while keras imports, when
    none is imported yet: Keras then leaves out its scikit-learn wrappers, pandas inputs, notebook display and
    plotting helpers for this process (they can still be imported afterwards). Other backends import things of
    their own that look for these packages, so they get the ordinary import; so does Keras, should a future
    release need one of them.
    """
    started = time.perf_counter()
    if "keras" in sys.modules:
        import keras

        return keras, 0.0
    lean = lean and os.environ.get("KERAS_BACKEND") == "jax"
    hidden = [name for name in OPTIONAL_PACKAGES_KERAS_NEEDS_NOT if name not in sys.modules] if lean else []
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
    import keras

    return keras, time.perf_counter() - started


def compilation_cache_dir():
    """Where firstnet keeps compiled programs between runs: $FIRSTNET_CACHE_DIR, else the user's cache folder.

    FIRSTNET_CACHE_DIR=off (or 0, or an empty value) turns the cache off.
    """
    chosen = os.environ.get("FIRSTNET_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "0", "off", "no", "false") else pathlib.Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "firstnet" / "jax"


def _private_writable_folder(folder):
    """Create `folder` for this user only; True if it can be written and no other user can write to it.

    JAX runs what it finds in its compilation cache, so a cache folder that others can write to is refused.
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
    if folder is None or not _private_writable_folder(folder):
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # The lesson's programs compile in well under JAX's default threshold of one second; keep them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.config.jax_compilation_cache_max_size == -1 and importlib.util.find_spec("filelock"):
        # JAX can bound its cache only with filelock installed; each program of the lesson takes about 1 MB.
        jax.config.update("jax_compilation_cache_max_size", 512 * 1024 * 1024)
    return folder


def _train(config, data, loading, seed, run_dir, log, started, import_seconds, figures=None):
    """Run the whole lesson once and return the run folder, the trained model, its history and its metrics.

    `data` may be an `Mnist` already loaded (the notebook and the tests pass one); otherwise `config.data` or
    the default sources are used.
    """
    started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    import keras

    cache_folder = enable_compilation_cache()
    from firstnet import evaluate, model as firstnet_model

    phase_started = time.perf_counter()
    data = data or loading.result()
    data_seconds = loading.seconds if loading else 0.0
    data_wait_seconds = time.perf_counter() - phase_started
    log(f"Training Dense({config.hidden_units}, relu) -> Dense(10, softmax) on {len(data.x_train)} digits "
        f"({data.source}): {config.epochs} epochs, batch {config.batch_size}, {config.optimizer}, seed {seed}")

    # One seed drives the initial weights, the shuffling and the validation split, so a run can be repeated.
    keras.utils.set_random_seed(seed)
    model = firstnet_model.build_model(hidden_units=config.hidden_units)
    firstnet_model.compile_model(model, optimizer=config.optimizer, learning_rate=config.learning_rate)

    phase_started = time.perf_counter()
    fit = _fit_compiled if _can_fit_compiled(model) else _fit_keras
    history, interrupted, compile_seconds = fit(model, data, config, seed)
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
        "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
        "validation_split": config.validation_split,
        "seed": seed,
        "backend": keras.backend.backend(),
        "training_loop": "compiled epochs (model.stateless_call)" if fit is _fit_compiled else "model.fit",
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
        "compile_seconds": compile_seconds,
        "fit_seconds": fit_seconds,
        "evaluate_seconds": evaluate_seconds,
        "started_at": started_at,
        "run_dir": str(run_dir),
    }
    if figures:
        figures.draw("confusion", run_dir / "confusion.png", metrics["confusion"])
    save_run(run_dir, model, history, metrics, started, figures=figures)
    return TrainResult(run_dir=run_dir, model=model, history=history, metrics=metrics)


def _fit_keras(model, data, config, seed):
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
    return {key: [float(value) for value in values] for key, values in history.items()}, interrupted, None


def _can_fit_compiled(model):
    """The compiled loop computes exactly what `compile_model` asked for, on JAX; anything else goes to model.fit."""
    import keras

    compiled_with = model.get_compile_config()
    return (keras.backend.backend() == "jax" and compiled_with.get("loss") == "categorical_crossentropy"
            and list(compiled_with.get("metrics") or []) == ["accuracy"])


def _fit_compiled(model, data, config, seed, shuffle=True):
    """`model.fit` as one compiled JAX program per group of batches, fed with the uint8 digits kept on the device.

    What is computed is fit's own work, through Keras's public stateless API: the tutorial's model
    (`model.stateless_call`), its loss (categorical cross-entropy of the softmax output), its optimizer
    (`optimizer.stateless_apply`), shuffled batches of `batch_size` with the last one smaller, and the epoch's
    running mean loss and accuracy in the history. What changes is where the work happens: Python hands the
    device a whole epoch at a time (50 batches between two progress-bar updates) instead of one batch, the pixels
    stay uint8 until the compiled step turns them into the tutorial's float32 values (no float32 copy of the data
    is shuffled each epoch), and on a CPU one slow matrix product is kept fast (`_skinny_products_kept`).
    """
    import jax

    train_images, train_labels, validation = _split_validation(data, config.validation_split)
    train_count = len(train_images)
    steps = -(-train_count // config.batch_size)
    images = jax.device_put(train_images.reshape(train_count, -1))
    labels = jax.device_put(train_labels.astype(np.int32))
    model.optimizer.build(model.trainable_variables)
    state = _read_state(model)
    run_steps = _training_program(model, config.batch_size)
    shuffling = np.random.default_rng(seed)

    compile_started = time.perf_counter()
    order, weights = _epoch_order(shuffling if shuffle else None, train_count, steps, config.batch_size)
    totals = (np.float32(0), np.float32(0), np.float32(0))
    compiled = run_steps.lower(state, totals, images, labels, order, weights, 0, 1).compile()
    compile_seconds = time.perf_counter() - compile_started

    history = {"loss": [], "accuracy": []}
    progress = _Progress(config.verbose, config.epochs, steps)
    interrupted = False
    try:
        for epoch in range(config.epochs):
            if epoch and shuffle:
                order, weights = _epoch_order(shuffling, train_count, steps, config.batch_size)
            progress.start(epoch)
            totals = (np.float32(0), np.float32(0), np.float32(0))
            # Without a progress bar the whole epoch is one call; the loop body is the same program either way.
            per_call = STEPS_PER_CALL if config.verbose == 1 else steps
            for first in range(0, steps, per_call):
                count = min(per_call, steps - first)
                state, totals = compiled(state, totals, images, labels, order, weights, first, count)
                if config.verbose == 1:
                    progress.update(first + count, _epoch_logs(totals))
            logs = _epoch_logs(totals)
            if validation is not None:
                _write_back(model, state)
                logs.update(_validation_logs(model, validation, config.batch_size))
                # Keras's evaluate may donate the variables' buffers to its own program: read them back.
                state = _read_state(model)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            progress.finish(logs)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: evaluating and saving the model as trained so far (Ctrl-C again to abandon it).")
    _write_back(model, state)
    return history, interrupted, compile_seconds


def _split_validation(data, validation_split):
    """Keras's rule for validation_split: the last fraction of the training digits, before any shuffling."""
    if not validation_split:
        return data.x_train, data.y_train, None
    split_at = int(np.floor(len(data.x_train) * (1.0 - validation_split)))
    if split_at in (0, len(data.x_train)):
        raise ValueError(f"validation_split {validation_split} leaves no digits for training or for validation "
                         f"out of {len(data.x_train)}")
    return data.x_train[:split_at], data.y_train[:split_at], (data.x_train[split_at:], data.y_train[split_at:])


def _epoch_order(shuffling, count, steps, batch_size):
    """A new shuffle of the digits (none without `shuffling`), padded to whole batches of which the padding weighs 0."""
    order = np.zeros(steps * batch_size, dtype=np.int32)
    order[:count] = shuffling.permutation(count) if shuffling is not None else np.arange(count)
    weights = np.zeros(steps * batch_size, dtype=np.float32)
    weights[:count] = 1.0
    return order, weights


def _training_program(model, batch_size):
    """A jitted function that runs `count` training steps from step `first` of an epoch, on the device."""
    import jax
    from jax import numpy as jnp
    from keras import ops

    optimizer = model.optimizer
    num_classes = model.outputs[0].shape[-1]

    def loss_and_outputs(trainable, non_trainable, images, targets, weights):
        probabilities, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        # Keras's categorical cross-entropy, averaged over the digits of this batch (the padding weighs 0).
        per_digit = ops.categorical_crossentropy(targets, probabilities)
        loss = ops.sum(per_digit * weights) / ops.sum(weights)
        return loss, (probabilities, non_trainable)

    gradient = jax.value_and_grad(loss_and_outputs, has_aux=True)
    if jax.default_backend() == "cpu":
        gradient = _skinny_products_kept(gradient)

    def run_steps(state, totals, images, labels, order, weights, first, count):
        def one_step(step, carry):
            (trainable, non_trainable, optimizer_variables), (loss_total, correct, seen) = carry
            rows = jax.lax.dynamic_slice_in_dim(order, step * batch_size, batch_size)
            batch_weights = jax.lax.dynamic_slice_in_dim(weights, step * batch_size, batch_size)
            # The tutorial's preparation, done here on the device: pixels as float32 in 0..1, labels one-hot.
            batch_images = scale_pixels(jnp.take(images, rows, axis=0))
            batch_labels = jnp.take(labels, rows, axis=0)
            targets = ops.one_hot(batch_labels, num_classes)
            (loss, (probabilities, non_trainable)), gradients = gradient(
                trainable, non_trainable, batch_images, targets, batch_weights)
            trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, gradients, trainable)
            # fit's running means: the loss weighted by batch size, the accuracy over all digits seen so far.
            batch_count = ops.sum(batch_weights)
            hits = ops.sum(ops.cast(ops.argmax(probabilities, axis=-1) == batch_labels, "float32") * batch_weights)
            return (trainable, non_trainable, optimizer_variables), (loss_total + loss * batch_count, correct + hits,
                                                                     seen + batch_count)

        return jax.lax.fori_loop(first, first + count, one_step, (state, totals))

    return jax.jit(run_steps)


def _skinny_products_kept(function):
    """`function`, computing the same sums, with XLA's slowest CPU matrix product of the lesson kept fast.

    JAX computes the output layer's kernel gradient as d_probabilities^T @ hidden, a 10x512 product over the
    batch, and then transposes it to the kernel's 512x10. XLA folds that transpose into the product and runs its
    512x10 kernel, which takes 0.2 ms on a CPU, a fifth of a whole training step; the 10x512 product takes 0.03 ms.
    This runs `function`'s traced computation again with an optimization barrier after each such product (the
    first axis of both operands contracted, far fewer rows than columns), so XLA keeps it as JAX wrote it.
    """
    import jax
    from jax.extend import core as jax_core

    def kept_product(equation, left, right):
        (contracting, batch) = equation.params["dimension_numbers"]
        if (batch != ((), ()) or tuple(map(tuple, contracting)) != ((0,), (0,)) or left.ndim != 2 or right.ndim != 2
                or left.shape[1] * 8 > right.shape[1]):
            return None
        product = equation.primitive.bind(left, right, **equation.primitive.get_bind_params(equation.params))
        return [jax.lax.optimization_barrier(product)]

    def evaluate(jaxpr, constants, *arguments):
        values = dict(zip(jaxpr.constvars, constants))
        values.update(zip(jaxpr.invars, arguments))

        def read(atom):
            return atom.val if isinstance(atom, jax_core.Literal) else values[atom]

        for equation in jaxpr.eqns:
            inputs = [read(atom) for atom in equation.invars]
            outputs = None
            if equation.primitive is jax.lax.dot_general_p:
                outputs = kept_product(equation, *inputs)
            elif equation.primitive.name in ("jit", "pjit"):
                inner = equation.params["jaxpr"]
                outputs = evaluate(inner.jaxpr, inner.consts, *inputs)
            if outputs is None:
                result = equation.primitive.bind(*inputs, **equation.primitive.get_bind_params(equation.params))
                outputs = result if equation.primitive.multiple_results else [result]
            values.update(zip(equation.outvars, outputs))
        return [read(atom) for atom in jaxpr.outvars]

    def kept(*arguments):
        traced, shapes = jax.make_jaxpr(function, return_shape=True)(*arguments)
        results = evaluate(traced.jaxpr, traced.consts, *jax.tree.leaves(arguments))
        return jax.tree.unflatten(jax.tree.structure(shapes), results)

    return kept


def scale_pixels(pixels):
    """uint8 pixels to the tutorial's float32 values in 0..1, bit for bit, inside compiled JAX code."""
    from jax import numpy as jnp

    return jnp.take(jnp.asarray(PIXEL_VALUES), pixels.astype("int32"), axis=0)


def _epoch_logs(totals):
    loss_total, correct, seen = (float(value) for value in totals)
    return {"accuracy": correct / seen, "loss": loss_total / seen} if seen else {}


def _validation_logs(model, validation, batch_size):
    images, labels = validation
    import keras

    loss, accuracy = model.evaluate(mnist_data.prepare_images(images), keras.utils.to_categorical(labels, 10),
                                    batch_size=batch_size, verbose=0)
    return {"val_accuracy": float(accuracy), "val_loss": float(loss)}


def _read_state(model):
    """The model's and its optimizer's variables as JAX arrays, in the order `stateless_call`/`_apply` expect."""
    return (
        [variable.value for variable in model.trainable_variables],
        [variable.value for variable in model.non_trainable_variables],
        [variable.value for variable in model.optimizer.variables],
    )


def _write_back(model, state):
    """Put the trained values into the Keras model and its optimizer, as fit does when it ends."""
    trainable, non_trainable, optimizer_variables = state
    for variables, values in ((model.trainable_variables, trainable), (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer_variables)):
        for variable, value in zip(variables, values):
            variable.assign(value)


class _Progress:
    """fit's progress display: "Epoch k/n" then Keras's own progress bar with the running loss and accuracy."""

    def __init__(self, verbose, epochs, steps):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.bar = None

    def start(self, epoch):
        if not self.verbose:
            return
        import keras

        if self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        self.bar = keras.utils.Progbar(target=self.steps, verbose=self.verbose, unit_name="step", stateless_metrics=set())

    def update(self, step, logs):
        if self.bar is not None:
            self.bar.update(step, list(logs.items()), finalize=False)

    def finish(self, logs):
        if self.bar is not None:
            self.bar.update(self.steps, list(logs.items()), finalize=True)


def save_run(run_dir, model, history, metrics, started, *, figures=None):
    """Write a run folder, each file atomically: model.keras, history.json, curves.png, confusion.png, metrics.json.

    `metrics` must hold "confusion"; this adds save_seconds, finished_at and total_seconds (from `started`, a
    time.perf_counter() value). metrics.json is written last: its presence marks the run as complete.
    `figures`, a `_FigureHelper` already asked to draw both figures, is waited for; if it failed they are drawn here.
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


class _FigureHelper:
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
                [sys.executable, "-c", "from firstnet import train; train._draw_figures()"],
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
    """The helper's side of `_FigureHelper`: import matplotlib now, then draw each figure asked for on stdin."""
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
