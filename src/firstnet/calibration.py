"""How far to trust a probability: the reliability diagram, the expected calibration error, and temperature scaling."""

import numpy as np

BINS = 10  # Ten bins of confidence, 0-10%, 10-20%, ..., 90-100%, as the reliability diagram draws them.


def _checked(probabilities, labels):
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if probabilities.ndim != 2 or labels.shape != (len(probabilities),):
        raise ValueError(f"expected probabilities of shape (n, classes) and n labels, got {probabilities.shape} "
                         f"and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("no pictures to measure: pass at least one row of probabilities and its label")
    return probabilities, labels


def reliability(probabilities, labels, bins=BINS):
    """Per bin of confidence (the top probability), how many answers fell in it, how sure they were, how many were right.

    Bin b holds the confidences in (b/bins, (b+1)/bins]; the first also holds 0. Returns a dict of lists: `edges`
    (bins + 1 numbers), `count`, `confidence` (the mean top probability) and `accuracy` (the share answered right),
    the last two None for an empty bin. A calibrated network's accuracy equals its confidence in every bin.
    """
    probabilities, labels = _checked(probabilities, labels)
    if int(bins) < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    table = {"edges": [b / bins for b in range(bins + 1)], "count": [], "confidence": [], "accuracy": []}
    for b in range(bins):
        inside = which == b
        table["count"].append(int(inside.sum()))
        table["confidence"].append(float(confidence[inside].mean()) if inside.any() else None)
        table["accuracy"].append(float(correct[inside].mean()) if inside.any() else None)
    return table


def expected_calibration_error(probabilities, labels, bins=BINS):
    """ECE: the gap between accuracy and confidence in each bin, weighted by the share of answers in the bin.

    0 is perfectly calibrated; 0.02 means the network's stated confidence is off by 2 points on average.
    """
    table = reliability(probabilities, labels, bins)
    total = sum(table["count"])
    return float(sum(count / total * abs(accuracy - confidence) for count, accuracy, confidence
                     in zip(table["count"], table["accuracy"], table["confidence"]) if count))


def softmax(logits, temperature=1.0):
    """Probabilities from logits divided by `temperature`: above 1 they spread out, below 1 they sharpen."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    exponentials = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits, labels, temperature=1.0):
    """The mean cross-entropy of the labels under `softmax(logits, temperature)`."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    largest = scaled.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(scaled - largest).sum(axis=1)) + largest[:, 0]
    return float(np.mean(log_normaliser - scaled[np.arange(len(scaled)), np.asarray(labels, dtype=np.int64)]))


def fit_temperature(logits, labels, low=0.05, high=20.0, iterations=60):
    """The temperature that makes held-out digits' probabilities most likely (Guo et al., 2017).

    One number divides all logits, so the answers (the largest logit) never change, only how sure they sound. The
    likelihood has one best temperature; a golden-section search over log(temperature) finds it.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    _checked(logits, labels)
    golden = (np.sqrt(5) - 1) / 2
    left, right = np.log(low), np.log(high)
    for _ in range(iterations):
        inner_left, inner_right = right - golden * (right - left), left + golden * (right - left)
        if negative_log_likelihood(logits, labels, np.exp(inner_left)) < negative_log_likelihood(logits, labels, np.exp(inner_right)):
            right = inner_right
        else:
            left = inner_left
    return float(np.exp((left + right) / 2))


def reliability_figure(probabilities, labels, title="reliability: is the network as sure as it is right?", bins=BINS):
    """Bars of accuracy per bin of confidence against the diagonal a calibrated network would follow, ECE in the title."""
    from firstnet import plots

    plt = plots._pyplot()
    table = reliability(probabilities, labels, bins)
    figure, axes = plt.subplots(figsize=(5, 5))
    width = 1 / bins
    centres = [edge + width / 2 for edge in table["edges"][:-1]]
    accuracy = [value if value is not None else 0 for value in table["accuracy"]]
    axes.bar(centres, accuracy, width=width * 0.9, color="tab:blue", label="share answered right")
    axes.plot([0, 1], [0, 1], "k--", label="calibrated: as right as it is sure")
    for centre, count, value in zip(centres, table["count"], accuracy):
        if count:
            axes.text(centre, min(value + 0.02, 0.97), str(count), ha="center", fontsize=7)
    axes.set_xlabel("confidence (the top probability)")
    axes.set_ylabel("accuracy")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(f"{title}\nECE {expected_calibration_error(probabilities, labels, bins):.4f}", fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def confusion_cell(probabilities, labels, true, predicted):
    """The pictures one cell of the confusion matrix counts: those of digit `true` that the network read as `predicted`.

    Returns a list of dicts, the surest first: `index` (into the pictures scored), `probability` of the digit it
    said and `true_probability` of the right one. Its length is the cell's count.
    """
    probabilities, labels = _checked(probabilities, labels)
    classes = probabilities.shape[1]
    for name, value in (("true", true), ("predicted", predicted)):
        if not 0 <= int(value) < classes:
            raise ValueError(f"{name} must be a class 0..{classes - 1}, got {value}")
    said = probabilities.argmax(axis=1)
    inside = np.flatnonzero((labels == int(true)) & (said == int(predicted)))
    inside = inside[np.argsort(-probabilities[inside, int(predicted)], kind="stable")]
    return [{"index": int(index), "probability": float(probabilities[index, int(predicted)]),
             "true_probability": float(probabilities[index, int(true)])} for index in inside]
