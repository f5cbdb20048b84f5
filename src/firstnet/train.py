"""The tutorial's lesson: prepare MNIST, build the network, compile it, fit it, evaluate it, save it as a run folder."""

import dataclasses
import datetime
import math
import secrets

import keras

from firstnet import checkpoints, choices, distribute, evaluate, loops, model as firstnet_model, runs, versions
from firstnet.choices import MAX_HIDDEN_UNITS
from firstnet.data import load_dataset
from firstnet.errors import UserError
from firstnet.loops import events


@dataclasses.dataclass
class TrainConfig:
    """The tutorial's recipe is the default: 5 epochs, batches of 128, 512 hidden units, rmsprop.

    `loop` chooses how the fit runs: "fit" is Keras's own `model.fit`, "compiled" the fast loop that computes
    the same thing (loops/compiled.py), None the fast loop where it is supported.
    """

    # "dense" (the tutorial's network) or "convnet" (the next lesson; model.py has both, CONVNET its recipe).
    model: str = "dense"
    # Redraw each training picture a little differently every time it is seen (augment.py): "none" (the tutorial's
    # recipe), "stroke" (heavier or lighter strokes, the convnet's recipe) or "all" (also turned, slanted, resized, moved).
    augment: str = "none"
    epochs: int = 5
    batch_size: int = 128
    hidden_units: int = 512
    optimizer: str = "rmsprop"
    learning_rate: float | None = None
    learning_rate_schedule: str = "constant"
    validation_split: float = 0.0
    seed: int | None = None
    loop: str | None = None
    data: str | None = None
    # A dataset by name instead of a path: "mnist" or "fashion_mnist", through keras's cache (data/named.py).
    dataset: str | None = None
    run_dir: str | None = None
    # A run folder to go on with (`firstnet train --resume RUN`): its checkpoint's recipe, seed and data are used.
    resume: str | None = None
    # Devices to train on, data-parallel (distribute.py): None or 1 for one, a number, or "all" (JAX only).
    devices: str | int | None = None
    runs_root: str = runs.DEFAULT_RUNS_ROOT
    verbose: int = 1
    # A notebook's quick experiment: saved and listed, but never "the newest run" that predict and serve use.
    experiment: bool = False

    def check(self):
        """Raise UserError (a ValueError) with a helpful message for settings that cannot work."""
        for name in ("epochs", "batch_size", "hidden_units"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.hidden_units > MAX_HIDDEN_UNITS:
            raise UserError(f"hidden_units must be at most {MAX_HIDDEN_UNITS:,}, got {self.hidden_units:,}")
        if not 0.0 <= self.validation_split < 1.0:
            raise UserError(f"validation_split must be at least 0 and below 1, like 0.1; got {self.validation_split}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.optimizer not in choices.OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(choices.OPTIMIZERS)}")
        if self.learning_rate_schedule not in choices.SCHEDULES:
            raise UserError(f"unknown learning rate schedule {self.learning_rate_schedule!r}; choose one of "
                            f"{', '.join(choices.SCHEDULES)}")
        if self.model not in choices.MODELS:
            raise UserError(f"unknown model {self.model!r}; choose one of {', '.join(choices.MODELS)}")
        if self.augment not in choices.AUGMENTATIONS:
            raise UserError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(choices.AUGMENTATIONS)}")
        if self.loop not in (None, *choices.LOOPS):
            raise UserError(f"unknown loop {self.loop!r}; choose one of {', '.join(choices.LOOPS)}")


# `firstnet train --fast`: not the tutorial's recipe but a shorter one to the same accuracy. Two epochs instead of
# five, RMSprop's learning rate starting at 0.004 instead of 0.001 and falling to 0 along a cosine, so that the
# large early steps learn fast and the small late ones settle. Over 15 seeds on the full MNIST its test accuracy
# was 0.9789 to 0.9816 (median 0.9805); the recipe's was 0.9789 to 0.9800 over 5 seeds, in over twice the time.
FAST = {"epochs": 2, "learning_rate": 0.004, "learning_rate_schedule": "cosine"}

# `firstnet train --model convnet`: the next lesson's recipe. Adam starts at 0.004 and falls to 0 along a cosine
# over 3 epochs; batch normalization (model.py) keeps such a rate stable from the first step, and the falling rate
# lets the last steps settle. Its strokes are redrawn heavier or lighter at random (augment.py): MNIST's writers
# share one pen, other hands do not, and this is what made it read them better (benchmarks/OTHER_HANDS.md); turns,
# slants and shifts did not, at a higher cost. keras-io's recipe needs 15 epochs for its 99.2%
# (benchmarks/CONVNET.md has the timings).
CONVNET = {"model": "convnet", "augment": "stroke", "epochs": 3, "batch_size": 128, "optimizer": "adam",
           "learning_rate": 0.004, "learning_rate_schedule": "cosine"}


@dataclasses.dataclass
class TrainResult:
    run_dir: object
    model: object
    history: dict
    metrics: dict


def train(config=None, data=None, *, watchers=(), figures=None, timings=None):
    """Run the whole lesson once and return the run folder, the trained model, its history and its metrics.

    `data` may be an `Dataset` already loaded (the notebooks and the tests pass one); otherwise `config.data` or
    the default sources are used. `watchers` see training as it happens (loops/events.py): the CLI's progress
    bar, the web page. `figures` and `timings` come from the CLI's start-up (startup.py): who draws the figures,
    and how long the import and the loading took.
    """
    config = config or TrainConfig()
    if config.resume:  # Resume: the interrupted run's own recipe and seed, in its own folder (checkpoints.py).
        config = checkpoints.resumed_config(config)
    config.check()
    # One seed drives the initial weights, the shuffling and the validation split, so a run can be repeated.
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    announce = events.Broadcast(watchers)
    # On several devices (`--devices`), everything below runs in Keras's DataParallel distribution (distribute.py).
    devices = distribute.choose(config.devices)
    with runs.new_run(config.run_dir, root=config.runs_root, resume=config.resume) as run_dir, distribute.scope(devices):
        # 1. Prepare: the digits as the tutorial loads them (uint8 28x28 images, labels 0-9).
        data = data or load_dataset(config.data, dataset=config.dataset)
        resumed = checkpoints.load(run_dir, data) if config.resume else None  # Refused if the data or versions changed.
        announce("begin", text=describe(config, data, seed))

        # 2. Build: Dense(512, relu) -> Dense(10, softmax).
        keras.utils.set_random_seed(seed)
        model = firstnet_model.build_model(config.model, data.image_shape, data.num_classes,
                                           hidden_units=config.hidden_units, augment=config.augment)
        if resumed is not None:  # Weights of other shapes are a damaged checkpoint: said now, not by a loop later.
            resumed.check_shapes(model)

        # 3. Compile: rmsprop, categorical cross-entropy, accuracy.
        firstnet_model.compile_model(model, optimizer=config.optimizer, learning_rate=config.learning_rate,
                                     schedule=config.learning_rate_schedule,
                                     decay_steps=weight_updates(config, len(data.x_train)))

        # 4. Fit: `model.fit(train_images, train_labels, epochs=5, batch_size=128)`; config.loop says how it runs.
        # Each epoch's end (and Ctrl-C) leaves a checkpoint.npz that `firstnet train --resume` goes on from.
        keeper = checkpoints.Writer(run_dir, config, seed, data, resumed)
        fitted = loops.fit(model, data, config, seed, watchers=[*watchers, keeper], resume=resumed, devices=devices)

        # 5. Evaluate: `test_loss, test_acc = model.evaluate(test_images, test_labels)`.
        scores = evaluate.evaluate_model(model, data.x_test, data.y_test)

        # 6. Save: the model, its history, its figures and its numbers, in a run folder of its own.
        metrics = run_metrics(config, seed, data, fitted, scores, model=model, timings=timings)
        runs.save_run(run_dir, model, fitted.history, metrics, figures=figures)
        if not fitted.interrupted:
            checkpoints.finish(run_dir)
    announce("saved", text=str(run_dir))
    return TrainResult(run_dir=run_dir, model=model, history=fitted.history, metrics=metrics)


def describe(config, data, seed):
    """One line on what is about to be trained, as the CLI prints it first."""
    optimizer = config.optimizer
    if config.learning_rate_schedule != "constant":
        optimizer += (f" (learning rate {config.learning_rate or 'default'}, {config.learning_rate_schedule} "
                      f"decay to 0)")
    network = (f"Dense({config.hidden_units}, relu) -> Dense({data.num_classes}, softmax)" if config.model == "dense"
               else f"the convnet (2 x Conv2D, batch norm, max pooling; Dense({data.num_classes}, softmax))")
    if getattr(config, "augment", "none") != "none":
        network += f", training pictures redrawn at random (--augment {config.augment})"
    pictures = "digits" if data.dataset == "mnist" else f"pictures of {data.num_classes} classes"
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    # What it trains on after --validation-split: 54000 of MNIST's 60000 with 0.1, the rest held out to watch.
    trained_on = loops.training_count(len(data.x_train), config.validation_split)
    held = len(data.x_train) - trained_on
    count = f"{trained_on} {pictures}" + (f" ({held} more held out to validate)" if held else "")
    return (f"Training {network} on {count} ({data.source}): {epochs}, "
            f"batch {config.batch_size}, {optimizer}, seed {seed}")


def weight_updates(config, train_count):
    """How many weight updates a run makes: batches per epoch (after the validation split) times epochs."""
    train_count = loops.training_count(train_count, config.validation_split)
    return config.epochs * -(-train_count // config.batch_size)


# A test accuracy at most this many times chance (1/classes) is a run that learned nothing worth keeping: 0.15 on
# ten digits, where the tutorial's network reaches 0.98 in one epoch.
CHANCE_FACTOR = 1.5
TRY_INSTEAD = "try another optimizer (--optimizer adam), a lower learning rate (--learning-rate 0.0001) or --model convnet"


def learning_verdict(history, test_accuracy, num_classes):
    """(learned, why): False with the reason in words when the loss did not fall or the test score is at chance."""
    losses = [float(value) for value in history.get("loss") or []]
    if any(not math.isfinite(value) for value in losses):
        return False, "the training loss became NaN or infinite (the weights blew up)"
    if len(losses) >= 2 and losses[-1] >= losses[0]:
        return False, f"the training loss did not fall ({losses[0]:.4g} in the first epoch, {losses[-1]:.4g} in the last)"
    if test_accuracy is not None and num_classes > 1 and test_accuracy <= CHANCE_FACTOR / num_classes:
        return False, (f"its test accuracy {test_accuracy:.4f} is what guessing gets with {num_classes} classes "
                       f"({1 / num_classes:.4f})")
    return True, None


def run_metrics(config, seed, data, fitted, scores, *, model=None, backend=None, timings=None):
    """metrics.json's contents for a run of `train` or `scratch`: the recipe, how it ran, its scores, its data.

    `fitted` is a `loops.Fitted`; `scores` what `evaluate.evaluate_model` returns; `model` gives the learning
    rate the optimizer really started from and the backend (or pass `backend`, for the NumPy twin).
    """
    timings = dict(timings or {})
    if model is not None:
        learning_rate = firstnet_model.starting_learning_rate(model.optimizer)
        backend = backend or keras.backend.backend()
    else:
        learning_rate = config.learning_rate
    history = fitted.history
    learned, why = learning_verdict(history, scores["test_accuracy"], data.num_classes)
    return {
        # Whether the run learned (`learning_verdict`), said by `train` and shown on the page.
        "learned": learned,
        "why": why,
        "experiment": bool(getattr(config, "experiment", False)),
        "test_accuracy": scores["test_accuracy"],
        "test_loss": scores["test_loss"],
        "train_accuracy": history["accuracy"][-1] if history.get("accuracy") else None,
        "train_loss": history["loss"][-1] if history.get("loss") else None,
        "epochs": config.epochs,
        "epochs_completed": len(history.get("loss", [])),
        "interrupted": fitted.interrupted,
        "batch_size": config.batch_size,
        # The convnet's hidden layer is its own (128 units): --hidden-units is the dense network's.
        "hidden_units": config.hidden_units if getattr(config, "model", "dense") == "dense" else None,
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
        "versions": versions.installed(),
        "data_source": data.source,
        "data_path": data.path,
        # What was trained on what: the model family, the set by name, its class names (label i is
        # class_names[i]), one picture's shape, and how pictures were made arrays (predict prepares its own so).
        "model": getattr(config, "model", "dense"),
        # How each training picture was redrawn at random (augment.py, `train --augment`): none, stroke or all.
        "augment": getattr(config, "augment", "none"),
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
