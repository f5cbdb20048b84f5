"""Look inside a trained run: its weights, its worst mistakes, the representation its hidden layer learned, how it learned."""

import dataclasses
import json
import pathlib
import textwrap

import numpy as np

from firstnet import data as mnist_data, evaluate, runs
from firstnet.errors import UserError

FIGURES = {
    "weights": "look_weights.png",
    "mistakes": "look_mistakes.png",
    "confusion": "look_confusion.png",
    "representation": "look_representation.png",
    "toy": "look_toy_axes.png",
    "training": "look_training.png",
}
SAMPLE_COUNT = 2000
NEIGHBOURS = 5
FOLDS = 5
# The pixel in the middle of the image: its weights move in every step, because almost every digit has ink there.
TRACKED_PIXEL = 14 * 28 + 14


def find_run(run_dir=None, root=runs.DEFAULT_RUNS_ROOT):
    """The run folder to look into: the one named, else the newest finished run under `root`."""
    if run_dir is None:
        found = runs.list_runs(root)
        if not found:
            raise UserError(f"no finished run in {root}/; train one with `firstnet train`, or pass RUN_DIR")
        return found[-1][0]
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; `firstnet runs` lists them, `firstnet train` makes one")
    if not (run_dir / "model.keras").is_file():
        raise UserError(f"{run_dir}: has no model.keras, so it is not a finished run; train again with `firstnet train`")
    return run_dir


# ----- The hidden layer, read from the model's own weights -----

def hidden_weights(model):
    """The first layer's kernel (784, units) and bias (units,), as NumPy arrays."""
    return _numpy(model.get_layer("hidden").kernel), _numpy(model.get_layer("hidden").bias)


def _numpy(variable):
    """A Keras variable's value as a NumPy array, on any backend (converting the variable itself warns under NumPy 2)."""
    import keras

    return np.array(keras.ops.convert_to_numpy(variable.value))


def hidden_activations(model, inputs):
    """What the hidden layer outputs for prepared inputs (n, 784): relu(inputs @ kernel + bias), computed in NumPy."""
    kernel, bias = hidden_weights(model)
    return np.maximum(np.asarray(inputs, dtype=np.float32) @ kernel + bias, 0.0)


# ----- The representation idea: the same digits in two coordinate systems -----

def pca_2d(points):
    """Project points (n, features) onto their two directions of largest variance: principal component analysis.

    The directions are the top eigenvectors of the covariance matrix (features x features, small here, so this is
    quicker than an SVD of all the points). Each direction's sign is fixed so that its largest loading is positive,
    so the picture does not flip between runs.
    """
    points = np.asarray(points, dtype=np.float64)
    centred = points - points.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    directions = eigenvectors[:, ::-1][:, :2].T.copy()
    largest = np.abs(directions).argmax(axis=1)
    directions *= np.sign(directions[np.arange(2), largest])[:, np.newaxis]
    return centred @ directions.T


def knn_predict(train_points, train_labels, query_points, neighbours=NEIGHBOURS):
    """Each query point takes the most common label among its nearest training points; a tie goes to the smaller label."""
    distances = ((query_points[:, np.newaxis, :] - train_points[np.newaxis, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :neighbours]
    votes = np.zeros((len(query_points), int(train_labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.arange(len(query_points))[:, np.newaxis], train_labels[nearest]), 1)
    return votes.argmax(axis=1)


def knn_accuracy(points, labels, neighbours=NEIGHBOURS, folds=FOLDS):
    """How well a point's neighbours in this plane predict its class: k-NN accuracy, cross-validated over `folds` folds.

    Point i is in fold i % folds, and each fold is predicted from the others, so no point votes for itself.
    """
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    fold_of = np.arange(len(points)) % folds
    correct = 0
    for fold in range(folds):
        held_out = fold_of == fold
        predicted = knn_predict(points[~held_out], labels[~held_out], points[held_out], neighbours)
        correct += int((predicted == labels[held_out]).sum())
    return correct / len(points)


@dataclasses.dataclass
class Representation:
    """Test digits projected to 2-D twice, from raw pixels and from the hidden layer, with a separability number each."""

    labels: np.ndarray
    raw: np.ndarray
    hidden: np.ndarray
    raw_separability: float
    hidden_separability: float
    hidden_units: int


def representation(model, images, labels, sample_count=SAMPLE_COUNT):
    """The first `sample_count` digits of `images`, seen as pixels and as the trained hidden layer sees them."""
    images, labels = images[:sample_count], np.asarray(labels[:sample_count], dtype=np.int64)
    inputs = mnist_data.prepare_images(images)
    activations = hidden_activations(model, inputs)
    raw, hidden = pca_2d(inputs), pca_2d(activations)
    return Representation(labels=labels, raw=raw, hidden=hidden, raw_separability=knn_accuracy(raw, labels),
                          hidden_separability=knn_accuracy(hidden, labels), hidden_units=activations.shape[1])


# ----- The worst mistakes -----

def worst_mistakes(probabilities, labels, count=12):
    """The misclassified digits with the highest loss, -log p(true label), highest first."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    true_probability = probabilities[np.arange(len(labels)), labels]
    losses = -np.log(np.maximum(true_probability, 1e-12))
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-losses[wrong], kind="stable")][:count]
    return [{"index": int(index), "true": int(labels[index]), "predicted": int(predicted[index]),
             "probability": float(probabilities[index, predicted[index]]),
             "true_probability": float(true_probability[index]), "loss": float(losses[index])} for index in wrong]


# ----- The tutorial's toy figure: a change of axes makes the rule "x > 0" -----

@dataclasses.dataclass
class ToyAxes:
    """Black and white points in the original axes, the same points in new axes, and the new axes themselves."""

    original: np.ndarray
    new: np.ndarray
    black: np.ndarray
    origin: np.ndarray
    axes: np.ndarray  # Column 0 is the new x direction, column 1 the new y direction, in original coordinates.


def toy_change_of_axes(count=60, angle_degrees=35.0, seed=0):
    """Points where no original axis separates the colours, and a rotated, shifted pair of axes where x > 0 does.

    The points are drawn in the new coordinates (black to the right of a gap, white to the left) and then placed
    in the original plane by rotating and shifting; `new` is computed back from `original`, as a learner would.
    """
    rng = np.random.default_rng(seed)
    black = np.arange(count) % 2 == 0
    across = np.where(black, rng.uniform(0.3, 2.5, count), rng.uniform(-2.5, -0.3, count))
    along = rng.uniform(-2.0, 2.0, count)
    angle = np.deg2rad(angle_degrees)
    axes = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    origin = np.array([0.8, 0.4])
    original = origin + np.stack([across, along], axis=1) @ axes.T
    new = (original - origin) @ axes
    return ToyAxes(original=original, new=new, black=black, origin=origin, axes=axes)


def best_threshold_accuracy(values, classes):
    """The best accuracy any rule "value > t" or "value < t" reaches: 1.0 means one threshold separates the classes."""
    order = np.argsort(values, kind="stable")
    ordered = np.asarray(classes, dtype=bool)[order]
    # Put the threshold after each position in turn: everything left of it is one class, everything right the other.
    positives_left = np.concatenate([[0], np.cumsum(ordered)])
    negatives_left = np.arange(len(ordered) + 1) - positives_left
    positives_right = ordered.sum() - positives_left
    negatives_right = (~ordered).sum() - negatives_left
    correct = np.maximum(negatives_left + positives_right, positives_left + negatives_right)
    return float(correct.max() / len(ordered))


# ----- How training moved the loss and a few weights -----

@dataclasses.dataclass
class Replay:
    """The run's first epoch trained again from its seed, with the loss and a few weights recorded after every step."""

    seed: int
    steps: np.ndarray
    running_loss: np.ndarray
    weights: np.ndarray  # (steps + 1, tracked): row 0 is before the first update.
    weight_names: list
    initial_hidden_kernel: np.ndarray
    epoch_loss: float
    loop: str = "model.fit"  # The training loop that replayed it: the run's own, so that the batches are the same.


def replay_first_epoch(metrics, data, tracked=3):
    """Train the run's recipe for one epoch from its seed, as `firstnet.train` does, recording weights every step.

    train.py keeps the loss per epoch but not the weights, so this repeats the first epoch: the same seed gives the
    same initial weights and the same shuffled batches. Its epoch loss can be compared with the run's history to
    check that it really is the same training. Records the weights from the middle pixel to every hidden unit and all
    hidden-to-digit weights, then keeps the `tracked` of each that moved the most.
    """
    import keras

    from firstnet import model as firstnet_model

    seed = metrics.get("seed")
    if seed is None:
        return None
    keras.utils.set_random_seed(int(seed))
    model = firstnet_model.build_model(hidden_units=int(metrics.get("hidden_units", 512)))
    # The run's optimizer as it started, its learning rate schedule (`train --fast`) included.
    schedule, decay_steps = metrics.get("learning_rate_schedule", "constant"), None
    if schedule != "constant":
        from firstnet import train

        decay_steps = train.weight_updates(train.TrainConfig(
            epochs=int(metrics["epochs"]), batch_size=int(metrics["batch_size"]),
            validation_split=float(metrics.get("validation_split") or 0.0)), int(metrics["train_samples"]))
    firstnet_model.compile_model(model, optimizer=metrics.get("optimizer", "rmsprop"),
                                 learning_rate=metrics.get("learning_rate"), schedule=schedule, decay_steps=decay_steps)
    initial_hidden_kernel, _ = hidden_weights(model)

    def snapshot(hidden_kernel, digits_kernel):
        # Only the middle pixel's row of the big hidden kernel is copied out, not all 784 x units of it.
        from_pixel = keras.ops.convert_to_numpy(hidden_kernel[TRACKED_PIXEL])
        to_digits = keras.ops.convert_to_numpy(digits_kernel)
        return np.concatenate([np.asarray(from_pixel, dtype=np.float32), np.asarray(to_digits).reshape(-1)])

    hidden, digits = model.get_layer("hidden").kernel, model.get_layer("digits").kernel
    losses, values = [], [snapshot(hidden.value, digits.value)]
    batch_size, validation_split = int(metrics.get("batch_size", 128)), float(metrics.get("validation_split") or 0.0)
    # The run's own loop, so that the batches come in the same order: firstnet's compiled epochs replay a
    # `firstnet train` run step for step; model.fit replays a run that used model.fit.
    from firstnet import fastfit, train

    if str(metrics.get("training_loop", "")).startswith("compiled") and fastfit.supported(model):
        positions = [next(index for index, variable in enumerate(model.trainable_variables) if variable is wanted)
                     for wanted in (hidden, digits)]

        def record(step, logs, trainable):
            losses.append(logs["loss"])
            values.append(snapshot(*(trainable[position] for position in positions)))

        config = train.TrainConfig(epochs=1, batch_size=batch_size, validation_split=validation_split, verbose=0)
        history, _, _ = fastfit.fit(model, data, config, int(seed), on_step=record)
        loop, epoch_loss = "firstnet's compiled epochs", history["loss"][0]
    else:
        class Recorder(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                losses.append(float(logs["loss"]))
                values.append(snapshot(self.model.get_layer("hidden").kernel.value,
                                       self.model.get_layer("digits").kernel.value))

        model.fit(mnist_data.prepare_images(data.x_train), keras.utils.to_categorical(data.y_train, num_classes=10),
                  epochs=1, batch_size=batch_size, validation_split=validation_split, verbose=0, callbacks=[Recorder()])
        loop, epoch_loss = "Keras's model.fit", model.history.history["loss"][0]
    values = np.stack(values)
    units = initial_hidden_kernel.shape[1]
    names = [f"hidden: pixel (14, 14) to unit {unit}" for unit in range(units)]
    names += [f"digits: unit {unit} to digit {digit}" for unit in range(units) for digit in range(10)]
    moved = np.abs(values[-1] - values[0])
    chosen = list(np.argsort(-moved[:units], kind="stable")[:tracked])
    chosen += list(units + np.argsort(-moved[units:], kind="stable")[:tracked])
    return Replay(seed=int(seed), steps=np.arange(1, len(losses) + 1), running_loss=np.array(losses),
                  weights=values[:, chosen], weight_names=[names[index] for index in chosen],
                  initial_hidden_kernel=initial_hidden_kernel, epoch_loss=float(epoch_loss), loop=loop)


# ----- Figures -----

def _pyplot():
    from firstnet import plots

    return plots._pyplot()


def weights_figure(kernel, units=range(16), initial_kernel=None, initial_note="replayed from the seed"):
    """Some hidden units' incoming weights as 28x28 images; with `initial_kernel`, also what training changed."""
    plt = _pyplot()
    units = list(units)
    rows = [("trained weight", kernel)] + ([("change in training", kernel - initial_kernel)] if initial_kernel is not None else [])
    columns = 8
    row_count = -(-len(units) // columns)
    figure, axes_grid = plt.subplots(row_count * len(rows), columns, figsize=(1.6 * columns + 1.2, 1.75 * row_count * len(rows) + 0.8),
                                     squeeze=False)
    for block, (what, weights) in enumerate(rows):
        limit = float(np.abs(weights[:, units]).max()) or 1.0
        block_axes = axes_grid[block * row_count : (block + 1) * row_count]
        for position, axes in enumerate(block_axes.flat):
            axes.set_xticks([])
            axes.set_yticks([])
            if position >= len(units):
                axes.axis("off")
                continue
            shown = axes.imshow(weights[:, units[position]].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes.set_title(f"unit {units[position]}", fontsize=8)
        figure.colorbar(shown, ax=list(block_axes.flat), fraction=0.02, pad=0.02, label=what)
    subtitle = (f"top: trained weights; bottom: trained minus the initial weights ({initial_note})"
                if initial_kernel is not None else "trained weights")
    figure.suptitle(f"first-layer weights of hidden units {units[0]}..{units[-1]}, one 28x28 image per unit "
                    f"(red: ink there raises the unit, blue lowers it)\n{subtitle}")
    return figure


def mistakes_figure(images, mistakes, columns=6):
    from firstnet import plots

    titles = [f"#{m['index']}: true {m['true']}\nsaid {m['predicted']} (p={m['probability']:.3f})" for m in mistakes]
    rows = max(1, -(-len(mistakes) // columns))
    figure = plots.grid_figure([images[m["index"]] for m in mistakes], titles, rows, columns,
                               suptitle="the worst mistakes: misclassified test digits with the highest loss, -log p(true)")
    return figure


def representation_figure(found):
    """Raw pixels beside the hidden layer, each projected to its best 2-D plane, coloured by the true digit."""
    plt = _pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(13, 5.8))
    colours = plt.cm.tab10
    for axes, points, what, score in (
        (panels[0], found.raw, "raw pixels (784 numbers per digit)", found.raw_separability),
        (panels[1], found.hidden, f"the trained hidden layer ({found.hidden_units} relu units)", found.hidden_separability),
    ):
        for digit in range(10):
            chosen = found.labels == digit
            axes.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7, color=colours(digit), label=str(digit))
        axes.set_title(f"{what}\n{NEIGHBOURS}-NN accuracy in this plane: {score:.3f}")
        axes.set_xlabel("principal component 1")
        axes.set_ylabel("principal component 2")
        axes.grid(alpha=0.3)
    panels[1].legend(title="true digit", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3)
    figure.suptitle(f"the same {len(found.labels)} test digits, projected to 2-D by PCA: "
                    "the learned representation separates the classes better")
    figure.tight_layout()
    return figure


def toy_figure(toy):
    """The tutorial's figure: raw data, a change of coordinates, and the better representation where x > 0 is the rule."""
    plt = _pyplot()
    figure, panels = plt.subplots(1, 3, figsize=(15, 5))

    def points(axes, coordinates):
        axes.scatter(*coordinates[toy.black].T, s=30, color="black", edgecolor="black", label="black points")
        axes.scatter(*coordinates[~toy.black].T, s=30, color="white", edgecolor="black", label="white points")
        axes.set_aspect("equal")
        axes.grid(alpha=0.3)

    points(panels[0], toy.original)
    panels[0].set_title("1. raw data: no rule on x or y alone\nseparates black from white")
    points(panels[1], toy.original)
    for column, name in ((0, "new x"), (1, "new y")):
        tip = toy.origin + 2.6 * toy.axes[:, column]
        panels[1].annotate("", xy=tip, xytext=toy.origin, arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 2})
        panels[1].text(*tip, name, color="tab:red", fontsize=11)
    panels[1].set_title("2. coordinate change: new axes,\nrotated and moved to fit the story the data tells")
    for axes in panels[:2]:
        axes.set_xlabel("original x")
        axes.set_ylabel("original y")
    points(panels[2], toy.new)
    panels[2].axvline(0, color="tab:red", linestyle="--")
    panels[2].set_ylim(-2.3, 2.9)
    panels[2].text(0.1, 2.45, 'rule: "black points are such that x > 0"', color="tab:red", fontsize=10,
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.9})
    panels[2].set_xlabel("new x")
    panels[2].set_ylabel("new y")
    panels[2].set_title("3. better representation:\none simple rule now separates the colours")
    handles, names = panels[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=2)
    figure.suptitle("the tutorial's idea: learning is finding a representation where a simple rule works")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def training_figure(history, replay, comparison=None):
    """The run's loss per epoch; with a replay, also the loss and a few weights step by step during epoch 1."""
    plt = _pyplot()
    figure, panels = plt.subplots(1, 3 if replay else 1, figsize=(16, 4.8) if replay else (6, 4.8), squeeze=False)
    panels = panels[0]
    for key, style, label in (("loss", "o-", "training loss"), ("val_loss", "s--", "validation loss")):
        if history.get(key):
            panels[0].plot(range(1, len(history[key]) + 1), history[key], style, label=label)
    panels[0].set_xlabel("epoch")
    panels[0].xaxis.get_major_locator().set_params(integer=True)
    panels[0].set_ylabel("loss (categorical cross-entropy)")
    panels[0].set_title("the run: loss per epoch (history.json)")
    panels[0].grid(alpha=0.3)
    panels[0].legend()
    if not replay:
        figure.suptitle("how the loss moved (this run has no seed to replay, so its weights' path cannot be shown)")
        figure.tight_layout()
        return figure
    panels[1].plot(replay.steps, replay.running_loss)
    panels[1].set_xlabel("step (one batch, one weight update)")
    panels[1].set_ylabel("mean loss so far this epoch")
    panels[1].set_title("replayed epoch 1: the loss as Keras's progress bar shows it")
    panels[1].grid(alpha=0.3)
    steps = np.arange(len(replay.weights))
    for index, name in enumerate(replay.weight_names):
        panels[2].plot(steps, replay.weights[:, index], label=name, linestyle="-" if name.startswith("hidden") else "--")
    panels[2].set_xlabel("step (0 = the initial weights)")
    panels[2].set_ylabel("weight value")
    panels[2].set_title("replayed epoch 1: the weights that moved most")
    panels[2].grid(alpha=0.3)
    panels[2].legend(fontsize=7)
    figure.suptitle(textwrap.fill(f"how training moved the loss and the weights: the run keeps its loss per epoch only, "
                                  f"so epoch 1 was trained again from seed {replay.seed} with {replay.loop}, "
                                  f"recording every step; {replay_verdict(comparison or {})}", 150))
    figure.tight_layout()
    return figure


def compare_replay(replay, history, metrics, kernel, data):
    """How faithful the replay is: its epoch-1 loss against the run's, and its initial weights checked exactly.

    The check of the initial weights needs no record of them: a pixel that is blank in every training digit feeds
    0 into its weights, so their gradient is 0 and RMSprop never moves them. Such weights in the trained model must
    equal the replayed initial weights bit for bit, if those are the run's own.
    """
    history_loss = history["loss"][0] if history.get("loss") else None
    never_inked = np.flatnonzero(np.asarray(data.x_train).max(axis=0).reshape(-1) == 0)
    relative = abs(replay.epoch_loss - history_loss) / history_loss if history_loss else None
    return {
        "replay_loop": replay.loop,
        "run_loop": metrics.get("training_loop", "model.fit"),
        "same_loop": (replay.loop != "Keras's model.fit") == str(metrics.get("training_loop", "")).startswith("compiled"),
        "replayed_epoch1_loss": replay.epoch_loss,
        "history_epoch1_loss": history_loss,
        "relative_difference": relative,
        "matches_history": relative is not None and relative <= 1e-3,
        "never_inked_pixels": int(len(never_inked)),
        "initial_weights_verified": bool(len(never_inked))
                                    and bool(np.array_equal(kernel[never_inked], replay.initial_hidden_kernel[never_inked])),
    }


def replay_verdict(comparison):
    """One sentence on how the replay relates to the run, for the figure title and the terminal."""
    replayed, history_loss = comparison.get("replayed_epoch1_loss"), comparison.get("history_epoch1_loss")
    if replayed is None:
        return "no replay"
    if comparison.get("initial_weights_verified"):
        start = (f"same initial weights as the run (checked: the {comparison['never_inked_pixels']} pixels never "
                 f"inked in training kept them exactly)")
    elif comparison.get("never_inked_pixels"):
        start = ("NOT the run's initial weights: those of the pixels never inked differ (another seed, other training "
                 "digits, or an optimizer with weight decay)")
    else:
        start = "the initial weights could not be checked (every pixel is inked in some training digit)"
    if history_loss is None:
        return f"{start}; the run has no history.json to compare the loss with"
    if comparison["matches_history"]:
        return f"{start}; epoch-1 loss {replayed:.4f} matches the run's {history_loss:.4f}: the same training"
    if comparison["relative_difference"] <= 0.02 and not comparison.get("same_loop", True):
        return (f"{start}; epoch-1 loss {replayed:.4f} vs the run's {history_loss:.4f}: the run's own loop "
                f"({comparison['run_loop']}) draws its shuffled batches in another order")
    return (f"{start}; epoch-1 loss {replayed:.4f} does NOT match the run's {history_loss:.4f}, "
            "so this is only an example of such a training")


# ----- All of it, into the run folder -----

def look(run_dir=None, data=None, data_path=None, root=runs.DEFAULT_RUNS_ROOT, sample_count=SAMPLE_COUNT,
         mistake_count=12, replay=True):
    """Compute everything, then write the figures and look.json into the run folder; return look.json's contents.

    Nothing is written until all is computed, so a failure leaves the run folder as it was.
    """
    from firstnet import model as firstnet_model, plots

    run_dir = find_run(run_dir, root)
    model = firstnet_model.load_model(run_dir / "model.keras")
    metrics = runs.read_metrics(run_dir) or {}
    history = _read_json(run_dir / "history.json") or {}
    data = data or mnist_data.load_mnist(data_path)

    probabilities = np.asarray(model.predict(mnist_data.prepare_images(data.x_test), batch_size=1024, verbose=0))
    predicted = probabilities.argmax(axis=1)
    confusion = evaluate.confusion_matrix(data.y_test, predicted)
    accuracy = float((predicted == data.y_test).mean())
    mistakes = worst_mistakes(probabilities, data.y_test, mistake_count)
    found = representation(model, data.x_test, data.y_test, sample_count)
    toy = toy_change_of_axes()
    replayed = replay_first_epoch(metrics, data) if replay else None
    kernel, _ = hidden_weights(model)
    comparison = compare_replay(replayed, history, metrics, kernel, data) if replayed else None
    units = list(range(min(16, kernel.shape[1])))
    initial_note = ("replayed from the seed; checked: the pixels never inked kept their initial weights exactly"
                    if comparison and comparison["initial_weights_verified"]
                    else "replayed from the seed, but they do not check out as the run's, so only indicative")

    figures = {
        "weights": weights_figure(kernel, units, replayed.initial_hidden_kernel if replayed else None, initial_note),
        "mistakes": mistakes_figure(data.x_test, mistakes),
        "confusion": plots.confusion_figure(confusion, title=f"test digits: true label vs prediction "
                                                              f"(accuracy {accuracy:.4f})"),
        "representation": representation_figure(found),
        "toy": toy_figure(toy),
        "training": training_figure(history, replayed, comparison),
    }
    summary = {
        "run_dir": str(run_dir),
        "data_source": data.source,
        "test_digits": int(len(data.y_test)),
        "test_accuracy": accuracy,
        # Offline, the bundled test digits are MNIST training digits a full-MNIST model has already seen.
        "test_digits_note": evaluate.seen_in_training_note(metrics, data),
        "separability": {
            "raw": found.raw_separability,
            "hidden": found.hidden_separability,
            "method": f"{NEIGHBOURS}-NN accuracy, {FOLDS}-fold cross-validated, in the 2-D PCA plane of the first "
                      f"{len(found.labels)} test digits",
        },
        "worst_mistakes": mistakes,
        "weights": {"units": units, "shows_change": replayed is not None,
                    "initial_weights_verified": bool(comparison and comparison["initial_weights_verified"])},
        "toy": {"rule": "x > 0", "points": int(len(toy.black)),
                "rule_accuracy_new_axes": float(((toy.new[:, 0] > 0) == toy.black).mean()),
                "best_single_axis_accuracy_original": max(best_threshold_accuracy(toy.original[:, axis], toy.black)
                                                          for axis in range(2))},
        "training": _training_summary(history, replayed, comparison),
        "figures": dict(FIGURES),
    }
    for name, figure in figures.items():
        runs.save_figure(figure, run_dir / FIGURES[name])
    runs.write_json(run_dir / "look.json", summary)
    return summary


def _training_summary(history, replayed, comparison):
    summary = {"loss_per_epoch": history.get("loss", []), "replayed": replayed is not None}
    if replayed:
        summary.update(comparison)
        summary.update({
            "seed": replayed.seed,
            "steps": int(len(replayed.steps)),
            "verdict": replay_verdict(comparison),
            "tracked_weights": [{"name": name, "initial": float(replayed.weights[0, index]),
                                 "after_epoch1": float(replayed.weights[-1, index])}
                                for index, name in enumerate(replayed.weight_names)],
        })
    return summary


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def format_summary(summary):
    """look.json in a few lines for the terminal."""
    separability = summary["separability"]
    lines = [
        f"looked inside {summary['run_dir']}: test accuracy {summary['test_accuracy']:.4f} on {summary['test_digits']} "
        f"test digits ({summary['data_source']})",
        *([summary["test_digits_note"]] if summary.get("test_digits_note") else []),
        f"representation: {separability['method']}:",
        f"  raw pixels   {separability['raw']:.3f}",
        f"  hidden layer {separability['hidden']:.3f}",
        "worst mistakes (highest loss first):",
    ]
    lines += [f"  test #{m['index']:<5} true {m['true']}, predicted {m['predicted']} with p={m['probability']:.3f} "
              f"(p(true)={m['true_probability']:.4f}, loss {m['loss']:.2f})" for m in summary["worst_mistakes"][:5]]
    training = summary["training"]
    if training["replayed"]:
        lines.append(f"training: epoch 1 replayed with {training['replay_loop']} from seed {training['seed']} "
                     f"({training['steps']} steps, a few weights recorded at each): {training['verdict']}")
    else:
        lines.append("training: no seed in metrics.json, so only the loss per epoch is shown")
    run_dir = pathlib.Path(summary["run_dir"])
    lines.append("wrote " + ", ".join(str(run_dir / name) for name in [*summary["figures"].values(), "look.json"]))
    return "\n".join(lines)
