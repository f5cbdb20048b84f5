"""Fine-tuning: a trained run goes on learning from the class's own digits, scored before and after on both sets.

`firstnet train --from RUN --data COLLECTION` makes a new run: the old run's weights, trained further on most of the
collection (optionally mixed with as many MNIST training digits), and scored before and after on the collection's
held-out part and on MNIST's test digits. The old run is only read.

What carries over: the weights, and the optimizer's state (RMSprop's running average of squared gradients, Adam's
moments, the step count). A fresh RMSprop or Adam divides its first steps by a near-zero average, so those steps
are several times larger than the learning rate and shake a trained network; the carried state keeps the steps
the size the network ended its training with. The learning rate is always a new constant one (--learning-rate,
default FINETUNE_LEARNING_RATE): a run trained with a schedule (--fast, the convnet) ended it at 0, where nothing
would be learned.
"""

import dataclasses
import pathlib
import secrets

import numpy as np

from firstnet import data, evaluate, loops, model as firstnet_model, runs, train
from firstnet.data import collection
from firstnet.choices import HELD_OUT_FRACTION
from firstnet.errors import UserError
from firstnet.loops import events

FINETUNE_EPOCHS = 5
# Half of RMSprop's default: the network already knows digits; smaller steps adapt it to ours with less forgetting.
FINETUNE_LEARNING_RATE = 0.0005
MIN_PICTURES = 20  # Fewer cannot give both a training part and a held-out part worth a score.
DIGIT_NAMES = [str(digit) for digit in range(10)]


@dataclasses.dataclass
class FinetuneConfig:
    from_run: str
    data: str
    epochs: int = FINETUNE_EPOCHS
    batch_size: int = 128
    learning_rate: float | None = None
    # MNIST training digits mixed in, as a multiple of the collection's training pictures: 1.0 = as many.
    mix_mnist: float = 1.0
    held_out: float = HELD_OUT_FRACTION
    seed: int | None = None
    loop: str | None = None
    run_dir: str | None = None
    runs_root: str = runs.DEFAULT_RUNS_ROOT
    # The MNIST to mix and to score on: default, the parent run's own (its --data, or the default sources).
    mnist: str | None = None
    verbose: int = 1

    def check(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError(f"epochs and batch size must be at least 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.mix_mnist <= 100:
            raise UserError(f"--mix-mnist {self.mix_mnist}: must be 0 (only our digits) to 100, like 1.0 (as many "
                            "MNIST digits as ours)")
        if not 0 < self.held_out < 1:
            raise UserError(f"--held-out {self.held_out}: must be above 0 and below 1, like 0.2")


@dataclasses.dataclass
class _Recipe:
    """What `loops.fit` and `train.run_metrics` read from a config, for a fine-tuning run."""

    epochs: int
    batch_size: int
    hidden_units: int
    optimizer: str
    learning_rate: float
    loop: str | None
    model: str
    validation_split: float = 0.0
    learning_rate_schedule: str = "constant"
    devices: object = None


def finetune(config, *, mnist=None, watchers=(), figures=None):
    """Fine-tune `config.from_run` on the collection `config.data`; returns train.TrainResult with "finetune" in metrics."""
    config.check()
    parent = pathlib.Path(config.from_run)
    model_path = runs.resolve_model(parent)
    parent_metrics = runs.read_metrics(model_path.parent) or {}
    if [str(name) for name in parent_metrics.get("class_names", DIGIT_NAMES)] != DIGIT_NAMES:
        raise UserError(f"--from {parent}: that run learned other classes than the ten digits; fine-tune a run "
                        "trained on MNIST")
    data_path = pathlib.Path(config.data)
    if not data_path.is_dir():
        raise UserError(f"--data {data_path}: no such folder; give the class collection (`firstnet serve "
                        "--collection DIR` makes one)")
    images, labels, _ = collection.read_pictures(data_path)
    if len(labels) < MIN_PICTURES:
        raise UserError(f"--data {data_path}: only {len(labels)} pictures; fine-tuning needs at least {MIN_PICTURES} "
                        "(a few of each digit): add more on the page first")
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    model = firstnet_model.load_model(model_path)
    if tuple(firstnet_model.image_shape(model)) not in ((784,), (28, 28, 1)) or evaluate.probabilities_count(model) != 10:
        raise UserError(f"--from {parent}: the model does not read 28x28 digits into 10 classes; fine-tune an MNIST run")
    if mnist is None:
        mnist = (data.load_path(config.mnist) if config.mnist else data.choose_run_data(parent_metrics)[0])
    train_index, held_index = collection.held_out_split(labels, config.held_out)
    if not len(held_index) or not len(train_index):
        raise UserError(f"--data {data_path}: its {len(labels)} pictures leave none to hold out or none to train on "
                        f"with --held-out {config.held_out}; add at least two pictures of some digits")
    ours_train, ours_held = (images[train_index], labels[train_index]), (images[held_index], labels[held_index])
    # MNIST mixed in: the same seeded sample of its training digits in every epoch, shuffled with ours.
    mixed = min(len(mnist.x_train), round(config.mix_mnist * len(train_index)))
    picked = np.random.default_rng(seed).choice(len(mnist.x_train), size=mixed, replace=False)
    x_train = np.concatenate([ours_train[0], mnist.x_train[picked]])
    y_train = np.concatenate([ours_train[1], mnist.y_train[picked]]).astype(np.uint8)
    tuning = data.Dataset(x_train, y_train, mnist.x_test, mnist.y_test,
                            source=f"{len(train_index)} of our digits ({data_path}) + {mixed} MNIST digits",
                            path=mnist.path)
    before = _both_scores(model, ours_held, mnist)
    optimizer_name = parent_metrics.get("optimizer", "rmsprop")
    learning_rate = config.learning_rate or FINETUNE_LEARNING_RATE
    state = _carry_optimizer(model, optimizer_name, learning_rate)
    recipe = _Recipe(epochs=config.epochs, batch_size=config.batch_size, optimizer=optimizer_name,
                     hidden_units=int(parent_metrics.get("hidden_units") or 512), learning_rate=learning_rate,
                     loop=config.loop, model=firstnet_model.model_family(model))
    announce = events.Broadcast(watchers)
    with runs.new_run(config.run_dir, root=config.runs_root) as run_dir:
        announce("begin", text=(f"Training the run {parent} further on {tuning.source}: {config.epochs} "
                                f"epoch{'s' if config.epochs != 1 else ''}, batch {config.batch_size}, {optimizer_name} "
                                f"(learning rate {learning_rate:g}, optimizer state {state}), seed {seed}"))
        announce("note", text=_scores_line("before", before, len(held_index)))
        fitted = loops.fit(model, tuning, recipe, seed, watchers=list(watchers))
        after = _both_scores(model, ours_held, mnist)
        announce("note", text=_scores_line("after", after, len(held_index)))
        metrics = train.run_metrics(recipe, seed, tuning, fitted, after["mnist_scores"], model=model)
        metrics["data_full"] = bool(parent_metrics.get("data_full") or mnist.is_full)
        metrics["finetune"] = {
            "from": str(model_path.parent), "collection": str(data_path.resolve()), "pictures": int(len(labels)),
            "trained_on": int(len(train_index)), "held_out": int(len(held_index)), "held_out_fraction": config.held_out,
            "held_out_seed": collection.HELD_OUT_SEED, "mix_mnist": config.mix_mnist, "mnist_mixed": int(mixed),
            "optimizer_state": state, "before": _public(before), "after": _public(after),
        }
        runs.save_run(run_dir, model, fitted.history, metrics, figures=figures)
    announce("saved", text=str(run_dir))
    return train.TrainResult(run_dir=run_dir, model=model, history=fitted.history, metrics=metrics)


def _carry_optimizer(model, name, learning_rate):
    """Give the model a fresh optimizer of its run's kind at a constant rate, holding the old one's state.

    Returns "kept" when the old state was carried over, "fresh" when it could not be (an optimizer of another
    kind or shape, or a model saved without its optimizer).
    """
    old = getattr(model, "optimizer", None)
    optimizer = firstnet_model.make_optimizer(name, learning_rate)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    optimizer.build(model.trainable_variables)
    if old is None or type(old) is not type(optimizer) or not getattr(old, "built", False):
        return "fresh"
    # The learning rate is a variable of its own in Keras 3's optimizers, not part of the carried state.
    carried = [variable for variable in old.variables if not variable.path.endswith("learning_rate")]
    targets = [variable for variable in optimizer.variables if not variable.path.endswith("learning_rate")]
    if len(carried) != len(targets) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(carried, targets)):
        return "fresh"
    for source, target in zip(carried, targets):
        target.assign(source.value)
    return "kept"


def _both_scores(model, ours, mnist):
    ours_scores = evaluate.evaluate_model(model, *ours)
    mnist_scores = evaluate.evaluate_model(model, mnist.x_test, mnist.y_test)
    predicted = ours_scores["probabilities"].argmax(axis=1)
    per_digit = {str(digit): (float((predicted[ours[1] == digit] == digit).mean()) if (ours[1] == digit).any() else None)
                 for digit in range(10)}
    return {"ours": ours_scores["test_accuracy"], "ours_per_digit": per_digit,
            "mnist_test": mnist_scores["test_accuracy"], "mnist_scores": mnist_scores}


def _public(scores):
    return {key: value for key, value in scores.items() if key != "mnist_scores"}


def _scores_line(when, scores, held):
    return (f"{when + ':':<7} our digits (the {held} held out) {scores['ours']:.4f}   MNIST's test digits "
            f"{scores['mnist_test']:.4f}")
