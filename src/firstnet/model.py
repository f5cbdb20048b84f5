"""The tutorial's network: 784 pixels in, Dense(512, relu), Dense(10, softmax) out; built, compiled, or loaded safely."""

import pathlib

import keras
from keras import layers

from firstnet.choices import OPTIMIZERS, SCHEDULES
from firstnet.errors import UserError


def build_model(hidden_units=512, num_classes=10, input_size=28 * 28):
    """Two dense layers, as in the tutorial: a hidden layer that learns a representation, a softmax that reads it."""
    if int(hidden_units) < 1:
        raise ValueError(f"hidden_units must be at least 1, got {hidden_units}")
    return keras.Sequential(
        [
            keras.Input(shape=(input_size,), name="pixels"),
            layers.Dense(int(hidden_units), activation="relu", name="hidden"),
            layers.Dense(num_classes, activation="softmax", name="digits"),
        ],
        name="firstnet",
    )


def make_optimizer(name="rmsprop", learning_rate=None, schedule="constant", decay_steps=None):
    """An optimizer by name with Keras's defaults, or with the learning rate given.

    `schedule="cosine"` lets the learning rate fall from its starting value to 0 along a cosine over
    `decay_steps` weight updates (Keras's `CosineDecay`); the tutorial keeps it constant.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    optimizer = keras.optimizers.get(name)
    if schedule == "cosine":
        if not decay_steps or decay_steps < 1:
            raise ValueError(f"a cosine schedule needs the number of weight updates it spans, got {decay_steps}")
        start = float(learning_rate) if learning_rate is not None else float(optimizer.learning_rate)
        return type(optimizer)(learning_rate=keras.optimizers.schedules.CosineDecay(start, int(decay_steps)))
    if learning_rate is not None:
        optimizer.learning_rate = float(learning_rate)
    return optimizer


def compile_model(model, optimizer="rmsprop", learning_rate=None, schedule="constant", decay_steps=None):
    """The tutorial's compile step: rmsprop, categorical cross-entropy, accuracy."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, schedule=schedule, decay_steps=decay_steps),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def starting_learning_rate(optimizer):
    """The learning rate an optimizer started from: its constant rate, or its schedule's first value."""
    rate = optimizer.get_config()["learning_rate"]
    if isinstance(rate, dict):  # A schedule, described by its config.
        rate = keras.optimizers.schedules.deserialize(rate)(0)
    return float(keras.ops.convert_to_numpy(rate))


def load_model(path):
    """Load a saved `.keras` model with safe_mode=True, which refuses files that would run arbitrary code."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UserError(f"{path}: no such model; train one with `firstnet train` or point to a run folder")
    if path.suffix != ".keras":
        raise UserError(f"{path}: not a .keras file; firstnet saves models as model.keras in each run folder")
    # Keras answers "File not found" about a .keras file that exists but is not its zip archive: say what it is.
    if not is_keras_archive(path):
        raise UserError(f"{path}: not a Keras model archive (a .keras file is a zip holding config.json); "
                        "point to the model.keras of a run folder, or retrain it with `firstnet train`")
    try:
        return keras.saving.load_model(path, compile=True, safe_mode=True)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UserError(f"{path}: cannot load this model safely ({first_line}); retrain it with `firstnet train`") from error


def is_keras_archive(path):
    """True if `path` is a zip with the config.json that every `.keras` model saved by Keras 3 holds."""
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
