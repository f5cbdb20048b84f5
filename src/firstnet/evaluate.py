"""Evaluation as in the tutorial, `test_loss, test_acc = model.evaluate(...)`, plus which digits get confused."""

import sys
import time

import numpy as np

from firstnet.data import BUNDLED_SOURCE, one_hot, prepare_images
from firstnet.errors import first_line
from firstnet.names import shown
from firstnet.loops import compiled


def confusion_matrix(true_labels, predicted_labels, num_classes=10):
    """counts[t, p] = how many digits of true class t were predicted as p."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(true_labels, dtype=np.int64), np.asarray(predicted_labels, dtype=np.int64)), 1)
    return counts


def evaluate_model(model, images, labels, batch_size=1024, verbose=0):
    """The tutorial's `model.evaluate` (loss and accuracy), and the confusion matrix from the predictions.

    On JAX, uint8 digits are scored by one compiled program that computes what `model.evaluate` and
    `model.predict` would (see `loops.compiled.score`); otherwise, or if that program fails, by those two Keras
    calls. The result says which scored them ("scored_by"), any fallback, and the seconds it took.
    """
    started = time.perf_counter()
    scored, fallback = None, None
    verbose = display_verbosity(verbose)
    if np.asarray(images).dtype == np.uint8 and compiled.unsupported(model) is None:
        # Keras's progress bar, so that the output reads as `model.evaluate(..., verbose=1)`'s would.
        steps = -(-len(images) // batch_size)
        bar = _progress_bar(steps, verbose) if verbose else None
        try:
            scored = compiled.score(model, images, labels, batch_size=batch_size)
        except Exception as error:  # The public path below computes the same numbers.
            fallback = f"compiled scoring off ({type(error).__name__}: {first_line(error)})"
        if bar is not None and scored is not None:
            bar.update(steps, [("accuracy", scored[1]), ("loss", scored[0])], finalize=True)
    if scored is not None:
        test_loss, test_accuracy, probabilities = scored
    else:
        inputs = prepare_images(images, model.inputs[0].shape[1:])
        test_loss, test_accuracy = model.evaluate(inputs, one_hot(labels, probabilities_count(model)),
                                                  batch_size=batch_size,
                                                  verbose=verbose)
        probabilities = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))
    return {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "confusion": confusion_matrix(labels, probabilities.argmax(axis=1), probabilities.shape[1]),
        "probabilities": probabilities,
        "scored_by": "compiled" if scored is not None else "model.evaluate",
        "fallback": fallback,
        "seconds": time.perf_counter() - started,
    }


def probabilities_count(model):
    """How many classes the model tells apart: the size of its softmax output."""
    return int(model.outputs[0].shape[-1])


def seen_in_training_note(run_metrics, dataset):
    """A one-line warning when a model is scored on digits it was trained on, else None.

    The bundled offline digits all come from MNIST's training set, so a model trained on the full MNIST has seen
    every one of them: its score there is higher than on digits it has never seen, which is what a test measures.
    """
    if (run_metrics or {}).get("data_full") and dataset.source == BUNDLED_SOURCE:
        return (f"note: these {len(dataset.x_test)} test digits are from MNIST's training set, which this model "
                f"was trained on, so the score above is too good; pass --data with the full MNIST for a real test")
    return None


def format_confusion(confusion, class_names=None):
    """The confusion matrix as a text table: rows are true classes, columns predictions, headed by class names.

    Long names are cut to 10 characters in the columns' heads; the rows show them whole.
    """
    names = [shown(name) for name in (class_names or range(confusion.shape[1]))]
    width = max(6, min(11, max(len(name) for name in names) + 1))
    label_width = max(9, max(len(name) for name in names))
    corner = "true\\pred"
    lines = [f"{corner:>{label_width}} " + "".join(f"{name[:width - 1]:>{width}}" for name in names)]
    for name, row in zip(names, confusion):
        lines.append(f"{name:>{label_width}} " + "".join(f"{count:>{width}}" for count in row))
    return "\n".join(lines)


def display_verbosity(verbose):
    """Keras's verbosity for a progress bar on this stdout: 1 (a live bar) only where a live bar can be drawn.

    A live bar redraws itself with carriage returns, backspaces and colour codes, which a file or a pipe keeps as
    junk; there Keras's verbose=2 writes one plain line at the end instead. Notebooks draw live bars well.
    """
    if verbose != 1:
        return verbose
    is_terminal = getattr(sys.stdout, "isatty", None) is not None and sys.stdout.isatty()
    return 1 if is_terminal or "ipykernel" in sys.modules else 2


def _progress_bar(steps, verbose=1):
    import keras

    return keras.utils.Progbar(target=steps, verbose=verbose, unit_name="step", stateless_metrics=set())
