"""The networks: the tutorial's two dense layers, and the next lesson's convnet; built, compiled, or loaded safely."""

import math
import pathlib

import keras
from keras import layers

from firstnet.augment import with_augmentation
from firstnet.choices import OPTIMIZERS, SCHEDULES
from firstnet.errors import UserError


def build_model(family="dense", input_shape=(28, 28), num_classes=10, *, hidden_units=512, input_size=None,
                augment="none"):
    """The network of `family` ("dense", the tutorial's and the default, or "convnet") for images of `input_shape`.

    `input_shape` is one image's shape, (height, width) for grey pictures or (height, width, 3) for colour ones;
    `num_classes` the number of classes. `build_model(hidden_units=512)` is the tutorial's network for MNIST.
    With `augment` ("stroke" or "all", augment.py), the network starts with augmentation layers: in training each
    picture is redrawn a little differently every time it is seen; in prediction they pass it through unchanged.
    """
    if family not in BUILDERS:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(BUILDERS)}")
    network = BUILDERS[family](tuple(input_shape), int(num_classes), hidden_units=hidden_units, input_size=input_size)
    if augment == "none":
        return network
    return with_augmentation(network, tuple(input_shape), augment)


def build_dense(input_shape, num_classes, *, hidden_units=512, input_size=None):
    """Two dense layers, as in the tutorial: a hidden layer that learns a representation, a softmax that reads it.

    It sees an image as one flat row of numbers (784 for MNIST), so its input is the pixels, flattened.
    """
    if int(hidden_units) < 1:
        raise ValueError(f"hidden_units must be at least 1, got {hidden_units}")
    return keras.Sequential(
        [
            keras.Input(shape=(int(input_size or math.prod(input_shape)),), name="pixels"),
            layers.Dense(int(hidden_units), activation="relu", name="hidden"),
            layers.Dense(num_classes, activation="softmax", name="digits"),
        ],
        name="firstnet",
    )


def build_convnet(input_shape, num_classes, **ignored):
    """The next lesson: keras-io's "Simple MNIST convnet" with batch normalization after each convolution.

    Each Conv2D slides 3x3 filters over the image, so one filter finds its pattern (an edge, a stroke's end)
    wherever it is; max pooling halves the resolution, so the second convolution sees patterns of patterns over
    a wider field. Batch normalization rescales each filter's output to a steady range during training, which
    lets a large learning rate work from the first step: that is what makes a few epochs enough. Each block
    pools before it normalizes: the normalization and the ReLU then work on a quarter of the numbers, and
    pooling then ReLU is the same as ReLU then pooling. The dense layer's `hidden_units` do not apply; the
    convnet's hidden dense layer has 128 units.
    """
    height, width, *channels = input_shape
    return keras.Sequential(
        [
            keras.Input(shape=(height, width, channels[0] if channels else 1), name="image"),
            layers.Conv2D(32, 3, use_bias=False, name="conv1"),
            layers.MaxPooling2D(name="pool1"),
            layers.BatchNormalization(momentum=0.9, name="norm1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(64, 3, use_bias=False, name="conv2"),
            layers.MaxPooling2D(name="pool2"),
            layers.BatchNormalization(momentum=0.9, name="norm2"),
            layers.ReLU(name="relu2"),
            layers.Flatten(name="flatten"),
            # Light dropout: with only three epochs, heavier dropout (keras-io uses 0.5) leaves the net short of
            # what it could learn, and batch normalization already regularizes.
            layers.Dropout(0.1, name="dropout1"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dropout(0.1, name="dropout2"),
            layers.Dense(num_classes, activation="softmax", name="digits"),
        ],
        name="firstnet_convnet",
    )


# The model families a learner can train (`firstnet train --model FAMILY`), by the names in choices.MODELS.
BUILDERS = {"dense": build_dense, "convnet": build_convnet}


def model_family(model):
    """"convnet" for a model with convolutions, else "dense": what a loaded model is, for the commands that use it."""
    return "convnet" if any(isinstance(layer, layers.Conv2D) for layer in model.layers) else "dense"


def image_shape(model):
    """The shape of one image as the model takes it: (784,) for the dense network, (28, 28, 1) for the convnet."""
    return tuple(int(size) for size in model.inputs[0].shape[1:])


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
    refuse_oversized_archive(path)
    try:
        return keras.saving.load_model(path, compile=True, safe_mode=True, custom_objects=portable_optimizers())
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UserError(f"{path}: cannot load this model safely ({first_line}); it was not saved by firstnet's "
                        "Keras 3 or was changed since: load a model.keras that `firstnet train` saved, or train a "
                        "new one") from error


def portable_optimizers():
    """Each optimizer firstnet offers, by the class name a saved model records, as this backend's own class.

    On torch, Keras saves its RMSprop as `keras.src.backend.torch.optimizers.torch_rmsprop.RMSprop`: without this
    a model trained on torch could not be loaded where torch is not installed (firstnet's default install). By name,
    through Keras's public `custom_objects`, it loads on every backend with its optimizer state.
    """
    return {type(optimizer).__name__: type(optimizer) for optimizer in map(keras.optimizers.get, OPTIMIZERS)}


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


# Keras reads a .keras archive's entries into memory whole; a tampered one could claim gigabytes in a small file (a
# zip bomb). The tutorial's model is 3 MB; this leaves room for far larger experiments and still bounds memory.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024


def refuse_oversized_archive(path, max_bytes=MAX_ARCHIVE_BYTES):
    """A UserError if the archive's entries would unpack to more than `max_bytes`, judged from its directory."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        unpacked = sum(item.file_size for item in archive.infolist())
    if unpacked > max_bytes:
        raise UserError(f"{path}: would unpack to {unpacked / 2**20:.0f} MB, more than any firstnet model "
                        f"({max_bytes // 2**20} MB at most); it is not a model firstnet saved, so it is not loaded")
