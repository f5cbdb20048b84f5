"""The worst mistakes, the pictures behind one cell of the confusion matrix, and how far to trust the scores."""

import numpy as np

from firstnet import calibration, plots


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


def mistakes_figure(images, mistakes, columns=6):
    titles = [f"#{m['index']}: true {m['true']}\nsaid {m['predicted']} (p={m['probability']:.3f})" for m in mistakes]
    rows = max(1, -(-len(mistakes) // columns))
    figure = plots.grid_figure([images[m["index"]] for m in mistakes], titles, rows, columns,
                               suptitle="the worst mistakes: misclassified test digits with the highest loss, -log p(true)")
    return figure


def cell_figure(images, pictures, true, predicted, class_names=None, columns=6):
    """The pictures of one confusion cell (calibration.confusion_cell's list), each titled with its index and scores."""
    names = [str(name) for name in (class_names or range(10))]
    titles = [f"#{p['index']}\np({names[predicted]})={p['probability']:.3f}" for p in pictures]
    rows = max(1, -(-len(pictures) // columns))
    said = "read right" if true == predicted else f"read as {names[predicted]}"
    return plots.grid_figure([images[p["index"]] for p in pictures], titles, rows, min(columns, len(pictures)),
                             suptitle=f"test pictures of {names[true]} {said}, the surest first")


def calibration_summary(probabilities, labels):
    """look.json's calibration: the expected calibration error over the test pictures, and how it is measured."""
    return {"ece": calibration.expected_calibration_error(probabilities, labels), "bins": calibration.BINS,
            "method": f"expected calibration error: |accuracy - confidence| in {calibration.BINS} bins of the top "
                      "probability, weighted by the share of test pictures in each"}
