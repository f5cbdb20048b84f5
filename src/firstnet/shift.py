"""A shift in the data, measured: how a trained run reads other writers' digits (the class's own) beside MNIST's test digits.

The tutorial warns that biased inputs mean biased outputs. A network trained on MNIST's writers is scored here on
other writers' digits (a class collection, data/collection.py): the accuracy, each digit's, and the worst mistakes.
A class has few pictures of each digit, so every accuracy comes with a Wilson 95% confidence interval, and a
caution where the pictures are too few for the number to mean much.
"""

import math

import numpy as np

from firstnet import plots
from firstnet.look import mistakes

# Below this many pictures the interval is wider than about +-15 points: the score is said with a caution.
FEW = 30
Z_95 = 1.959963984540054  # The normal quantile for a two-sided 95% interval.


def wilson(correct, total, z=Z_95):
    """The Wilson score interval (low, high) for `correct` of `total`; (0, 1) for no pictures at all.

    Unlike the textbook p +- z*sqrt(p(1-p)/n), it stays within 0..1 and is honest for small n and for p near
    0 or 1, which is where a class's collection lives (8 of 9 right, say).
    """
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def score_report(probabilities, labels, run_metrics=None, ids=None, worst=12):
    """A dict: our accuracy with its interval, MNIST's test accuracy from the run's metrics, per digit, worst mistakes."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    right = predicted == labels
    per_digit = []
    for digit in range(probabilities.shape[1]):
        members = labels == digit
        total, correct = int(members.sum()), int(right[members].sum())
        low, high = wilson(correct, total)
        per_digit.append({"digit": digit, "correct": correct, "total": total,
                          "accuracy": correct / total if total else None, "low": low, "high": high,
                          "few": total < FEW})
    low, high = wilson(int(right.sum()), len(labels))
    wrong = mistakes.worst_mistakes(probabilities, labels, count=worst)
    if ids is not None:
        for entry in wrong:
            entry["id"] = ids[entry["index"]]
    return {"ours": float(right.mean()) if len(labels) else None, "count": int(len(labels)),
            "correct": int(right.sum()), "low": low, "high": high, "few": len(labels) < FEW,
            "mnist_test": (run_metrics or {}).get("test_accuracy"), "per_digit": per_digit, "worst": wrong,
            "wrong_count": int((~right).sum())}


def format_report(report):
    """The report as the terminal shows it: the two accuracies side by side, then each digit with its interval."""
    mnist = report["mnist_test"]
    lines = [f"on MNIST's test digits {_percent(mnist)}, on our digits {_percent(report['ours'])} "
             f"({report['correct']} of {report['count']}; 95% interval {_percent(report['low'])} to "
             f"{_percent(report['high'])})"]
    if report["few"]:
        lines.append(f"caution: only {report['count']} pictures; the interval says how far the true accuracy may be")
    lines.append("digit  right/total  accuracy  95% interval")
    for entry in report["per_digit"]:
        if not entry["total"]:
            lines.append(f"{entry['digit']:>5}  {'0/0':>11}  {'-':>8}  (no pictures yet)")
            continue
        caution = "  few: a rough guess" if entry["few"] else ""
        lines.append(f"{entry['digit']:>5}  {entry['correct']:>5}/{entry['total']:<5}  {_percent(entry['accuracy']):>8}  "
                     f"{_percent(entry['low'])} to {_percent(entry['high'])}{caution}")
    return "\n".join(lines)


def seen_note(run_metrics, folder):
    """A warning when the run was fine-tuned on this collection (its score on it is then too good), else None."""
    import pathlib

    tuned = (run_metrics or {}).get("finetune") or {}
    if not tuned.get("collection") or pathlib.Path(tuned["collection"]) != pathlib.Path(folder).resolve():
        return None
    return (f"note: this run was fine-tuned on {tuned['trained_on']} of these pictures, so its score on them is too "
            f"good; on the {tuned['held_out']} it never saw it scored {_percent(tuned['after']['ours'])} "
            f"(before fine-tuning: {_percent(tuned['before']['ours'])})")


def mistakes_figure(images, report, columns=6):
    """The worst mistakes among our digits, as look/mistakes.py draws MNIST's, titled for our digits."""
    chosen = report["worst"]
    titles = [f"true {m['true']}, said {m['predicted']}\n(p={m['probability']:.2f})" for m in chosen]
    rows = max(1, -(-len(chosen) // columns))
    return plots.grid_figure([images[m["index"]] for m in chosen], titles, rows, min(columns, max(1, len(chosen))),
                             suptitle="our digits it gets most wrong (highest loss, -log p(true digit))")


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%" if value in (0, 1) else f"{100 * value:.1f}%"
