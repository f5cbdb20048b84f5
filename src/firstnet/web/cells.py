"""From a mistake to its pictures: the digits the live confusion matrix counts and the last evaluation's probabilities.

The training process (web/watcher.py) sends the matrix's digits once, when the run begins, and each evaluation's
probabilities for them just before the evaluation itself; they are kept here, on the server, for
`GET /api/train/cell`, and never streamed to viewers (a thousand pictures are a megabyte, a click shows twenty).
"""

import base64
import threading

import numpy as np

from firstnet import calibration

DIGITS_EVENT, SCORES_EVENT = "confusion_digits", "confusion_scores"
PRIVATE = (DIGITS_EVENT, SCORES_EVENT)
MAX_LIMIT = 100


def packed(values, dtype):
    """An array as base64 of its bytes in `dtype`, with its shape: exact, and a quarter of the size of JSON numbers."""
    values = np.ascontiguousarray(values, dtype=dtype)
    return {"shape": list(values.shape), "dtype": np.dtype(dtype).str, "base64": base64.b64encode(values.tobytes()).decode()}


def unpacked(payload):
    array = np.frombuffer(base64.b64decode(payload["base64"]), dtype=np.dtype(payload["dtype"]))
    return array.reshape(payload["shape"])


class NoEvaluation(LookupError):
    """No confusion matrix yet (no run, or its first evaluation has not come): the message says what to do."""


class ConfusionPictures:
    """The current run's confusion digits, their labels and the last evaluation's probabilities (or none yet)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pictures = self.labels = self.probabilities = self.after_epochs = self.on = None

    def forget(self):
        """A new run begins: its matrix counts other digits, with other probabilities."""
        with self.lock:
            self.pictures = self.labels = self.probabilities = self.after_epochs = self.on = None

    def take(self, event):
        """Keep what a private event of the training process carries."""
        with self.lock:
            if event["kind"] == DIGITS_EVENT:
                self.pictures, self.labels = unpacked(event["pictures"]), unpacked(event["labels"]).astype(int)
                self.on, self.probabilities = event.get("on"), None
            elif event["kind"] == SCORES_EVENT:
                self.probabilities = unpacked(event["probabilities"]).astype(np.float64)
                self.after_epochs = event.get("after_epochs")

    def cell(self, true, predicted, limit):
        """The digits of `true` that the last evaluation read as `predicted`, the surest first, at most `limit` of them."""
        with self.lock:
            pictures, labels, probabilities = self.pictures, self.labels, self.probabilities
            after_epochs, on = self.after_epochs, self.on
        if pictures is None or probabilities is None or len(probabilities) != len(labels):
            raise NoEvaluation("no confusion matrix yet: start a run (POST /api/train) and wait for its first "
                               "evaluation, which comes before the first epoch")
        counted = calibration.confusion_cell(probabilities, labels, true, predicted)
        shown = counted[:limit]
        return {"true": int(true), "predicted": int(predicted), "count": len(counted), "shown": len(shown),
                "after_epochs": after_epochs, "on": on, "pictures": [
                    {"index": item["index"], "true": int(true), "predicted": int(predicted),
                     "probability": round(item["probability"], 4), "true_probability": round(item["true_probability"], 4),
                     "probabilities": [round(float(value), 4) for value in probabilities[item["index"]]],
                     "picture": pictures[item["index"]].astype(int).tolist()} for item in shown]}
