"""The worst mistakes: the misclassified test digits the network was most sure about."""

import numpy as np

from firstnet import plots


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
