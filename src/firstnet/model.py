"""The tutorial's network: 784 pixels in, Dense(512, relu), Dense(10, softmax) out; built, compiled, or loaded safely."""

import pathlib

import keras
from keras import layers

from firstnet.errors import UserError

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd", "adagrad", "adadelta", "adamax", "nadam", "lion")


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


def make_optimizer(name="rmsprop", learning_rate=None):
    """An optimizer by name with Keras's defaults, or with the learning rate given."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    optimizer = keras.optimizers.get(name)
    if learning_rate is not None:
        optimizer.learning_rate = float(learning_rate)
    return optimizer


def compile_model(model, optimizer="rmsprop", learning_rate=None):
    """The tutorial's compile step: rmsprop, categorical cross-entropy, accuracy."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def load_model(path):
    """Load a saved `.keras` model with safe_mode=True, which refuses files that would run arbitrary code."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UserError(f"{path}: no such model; train one with `firstnet train` or point to a run folder")
    if path.suffix != ".keras":
        raise UserError(f"{path}: not a .keras file; firstnet saves models as model.keras in each run folder")
    try:
        return keras.saving.load_model(path, compile=True, safe_mode=True)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UserError(f"{path}: cannot load this model safely ({first_line}); retrain it with `firstnet train`") from error
