"""How training moved the loss and a few weights: the run's first epoch trained again from its seed, step by step.

The replay runs the run's own loop (loops/: the compiled loop or model.fit; the NumPy twin for a scratch run), so
the batches come in the same order, and checks that it really is the same training.
"""

import dataclasses
import textwrap

import numpy as np

from firstnet import loops, model as firstnet_model, plots, scratch, train
from firstnet.data import one_hot, prepare_images
from firstnet.look.representation import hidden_weights
from firstnet.loops import events

# The pixel in the middle of the image: its weights move in every step, because almost every digit has ink there.
TRACKED_PIXEL = 14 * 28 + 14


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
    loop: str = "fit"  # The loop that replayed it (loops.LOOPS, or "scratch"): the run's own.


# How the replay names each loop for people.
LOOP_NAMES = {"compiled": "firstnet's compiled epochs", "fit": "Keras's model.fit", "scratch": "the NumPy twin"}


def run_loop(metrics):
    """The loop a run trained with: metrics.json's "loop", or for older runs read from its "training_loop" text."""
    if metrics.get("loop"):
        return metrics["loop"]
    described = str(metrics.get("training_loop", ""))
    return "compiled" if described.startswith("compiled") else "scratch" if described.startswith("NumPy") else "fit"


def replay_first_epoch(metrics, data, tracked=3):
    """Train the run's recipe for one epoch from its seed, with the run's own loop, recording weights every step.

    train.py keeps the loss per epoch but not the weights, so this repeats the first epoch: the same seed gives the
    same initial weights and the same shuffled batches. Its epoch loss can be compared with the run's history to
    check that it really is the same training. Records the weights from the middle pixel to every hidden unit and all
    hidden-to-digit weights, then keeps the `tracked` of each that moved the most.
    """
    seed = metrics.get("seed")
    if seed is None:
        return None
    losses, values = [], []

    def snapshot(hidden_kernel, digits_kernel):
        # Only the middle pixel's row of the big hidden kernel is kept, not all 784 x units of it.
        return np.concatenate([np.asarray(hidden_kernel[TRACKED_PIXEL], dtype=np.float32),
                               np.asarray(digits_kernel, dtype=np.float32).reshape(-1)])

    def record(event):
        # The trainable values come in Keras's order: hidden kernel, hidden bias, digits kernel, digits bias.
        if event.kind == "step":
            hidden_kernel, _, digits_kernel, _ = event.weights()
            losses.append(event.logs["loss"])
            values.append(snapshot(hidden_kernel, digits_kernel))
        elif event.kind == "epoch_end":
            epoch_losses.append(event.logs["loss"])

    epoch_losses = []
    loop = run_loop(metrics)
    if loop == "scratch":
        initial_hidden_kernel, initial_digits_kernel = _replay_scratch(metrics, data, int(seed), record)
    else:
        initial_hidden_kernel, initial_digits_kernel = _replay_keras(metrics, data, int(seed), loop, record)
    values = np.stack([snapshot(initial_hidden_kernel, initial_digits_kernel), *values])
    units = initial_hidden_kernel.shape[1]
    names = [f"hidden: pixel (14, 14) to unit {unit}" for unit in range(units)]
    names += [f"digits: unit {unit} to digit {digit}" for unit in range(units) for digit in range(10)]
    moved = np.abs(values[-1] - values[0])
    chosen = list(np.argsort(-moved[:units], kind="stable")[:tracked])
    chosen += list(units + np.argsort(-moved[units:], kind="stable")[:tracked])
    return Replay(seed=int(seed), steps=np.arange(1, len(losses) + 1), running_loss=np.array(losses),
                  weights=values[:, chosen], weight_names=[names[index] for index in chosen],
                  initial_hidden_kernel=initial_hidden_kernel, epoch_loss=float(epoch_losses[0]), loop=loop)


def _replay_keras(metrics, data, seed, loop, record):
    """Epoch 1 of a `firstnet train` run again, as the lesson runs it; returns the initial kernels."""
    import keras

    config = train.TrainConfig(epochs=int(metrics.get("epochs", 1)), batch_size=int(metrics.get("batch_size", 128)),
                               hidden_units=int(metrics.get("hidden_units", 512)),
                               validation_split=float(metrics.get("validation_split") or 0.0), loop=loop, verbose=0)
    keras.utils.set_random_seed(seed)
    # The run's own augmentation layers, if any: they draw from the seeded stream too, so the replay needs them.
    model = firstnet_model.build_model(hidden_units=config.hidden_units, augment=metrics.get("augment") or "none")
    # The run's optimizer as it started, its learning rate schedule (`train --fast`) included.
    schedule = metrics.get("learning_rate_schedule", "constant")
    firstnet_model.compile_model(model, optimizer=metrics.get("optimizer", "rmsprop"),
                                 learning_rate=metrics.get("learning_rate"), schedule=schedule,
                                 decay_steps=train.weight_updates(config, len(data.x_train))
                                 if schedule != "constant" else None)
    initial_hidden_kernel, _ = hidden_weights(model)
    initial_digits_kernel = np.asarray(keras.ops.convert_to_numpy(model.get_layer("digits").kernel.value))
    loops.fit(model, data, dataclasses.replace(config, epochs=1), seed, watchers=[record], report_every=1)
    return initial_hidden_kernel, initial_digits_kernel


def _replay_scratch(metrics, data, seed, record):
    """Epoch 1 of a `firstnet scratch` run again with the NumPy twin, from the same seed; returns the initial kernels."""
    rng = np.random.default_rng(seed)
    params = scratch.init_params(rng, hidden_units=int(metrics.get("hidden_units", 512)))
    initial = params["hidden_kernel"].copy(), params["digits_kernel"].copy()
    learning_rate = float(np.float32(metrics.get("learning_rate") or scratch.LEARNING_RATE))
    scratch.fit(params, scratch.init_rmsprop(params), prepare_images(data.x_train),
                one_hot(data.y_train), 1, int(metrics.get("batch_size", 128)), rng,
                learning_rate=learning_rate, validation_split=float(metrics.get("validation_split") or 0.0),
                emit=events.Broadcast([record]), report_every=1)
    return initial


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
        "replay_loop": LOOP_NAMES.get(replay.loop, replay.loop),
        "run_loop": LOOP_NAMES.get(run_loop(metrics), run_loop(metrics)),
        "same_loop": replay.loop == run_loop(metrics),
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


def training_figure(history, replay, comparison=None):
    """The run's loss per epoch; with a replay, also the loss and a few weights step by step during epoch 1."""
    plt = plots._pyplot()
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
                                  f"so epoch 1 was trained again from seed {replay.seed} with {LOOP_NAMES.get(replay.loop, replay.loop)}, "
                                  f"recording every step; {replay_verdict(comparison or {})}", 150))
    figure.tight_layout()
    return figure


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
