"""The training side of the page's live view: a loop watcher that turns events into small JSON payloads, and obeys pause and stop.

It runs inside the training process (web/live_child.py), where the weights are, so only what the page draws
crosses the pipe: the curves' numbers at most every STEP_SECONDS, a picture of the first layer's weights and the
guesses for a strip of fixed test digits at most every SNAPSHOT_SECONDS, and a confusion matrix at each epoch's
end. The compiled loop trains thousands of steps a second; a browser draws a few dozen frames.
"""

import base64
import collections
import math
import threading
import time

import numpy as np

from firstnet.web import cells

# The loops report every REPORT_EVERY steps; curve points go out at most this often, weight pictures less often.
STEP_SECONDS = 0.05
SNAPSHOT_SECONDS = 0.25
STRIP_DIGITS = 16
DENSE_UNITS = 8
CONV_FILTERS = 16
# The confusion matrix is counted on at most this many digits: enough for every cell to mean something, quick
# enough (a fraction of a second) not to hold up the next epoch.
CONFUSION_DIGITS = 1000
# Steps per second are measured over the last few seconds, so that the first step's compile time fades out.
RATE_SECONDS = 3.0


class Control:
    """Pause, resume and stop, as asked by the server (on the child's stdin) and obeyed between batches."""

    def __init__(self):
        self.stop_asked = False
        self.running = threading.Event()
        self.running.set()

    def command(self, word):
        if word == "pause":
            self.running.clear()
        elif word == "resume":
            self.running.set()
        elif word == "stop":
            self.stop_asked = True
            self.running.set()  # A paused run wakes up, to stop.


def as_bytes(values, scale=None):
    """Values as base64 int8 (-127..127 times scale/127): a weight picture in 784 bytes instead of 5,000 of JSON."""
    values = np.asarray(values, dtype=np.float64)
    scale = float(np.abs(values).max()) if scale is None else scale
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    quantized = np.clip(np.nan_to_num(values / scale * 127), -127, 127).round().astype(np.int8)
    return {"scale": scale, "shape": list(values.shape), "int8": base64.b64encode(quantized.tobytes()).decode()}


def finite(value):
    """A float for JSON, or None when training has blown up (a learning rate too large gives NaN): JSON has no NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


class LiveWatcher:
    """Watches one run of `train.train` and sends what the page draws through `send(dict)`.

    `data` is the run's Mnist and `config` its TrainConfig; `control` (a Control) pauses or stops it.
    """

    def __init__(self, data, config, send, control=None, clock=time.monotonic):
        self.data, self.config, self.send, self.clock = data, config, send, clock
        self.control = control or Control()
        self.strip_images = data.x_test[:STRIP_DIGITS]
        self.strip_labels = np.asarray(data.y_test[:STRIP_DIGITS]).astype(int)
        # The confusion matrix is counted on digits the network does not learn from: the held-out validation
        # digits when there are some, else the first of the test digits.
        self.confusion_on, self.confusion_images, self.confusion_labels = self._confusion_digits()
        # The last evaluation's probabilities for the confusion digits: a cell of the matrix opens to its pictures.
        self.confusion_probabilities = None
        self.model = None
        self.steps = None
        self.sent_step = self.sent_snapshot = -math.inf
        self.previous = None  # (epoch, step, loss sum, accuracy sum) at the last point sent, for per-batch means.
        self.paused_seconds = 0.0
        self.rates = collections.deque()

    def _confusion_digits(self):
        from firstnet import loops

        split = self.config.validation_split
        if split:
            (_, _), (images, labels) = loops.split_validation(self.data.x_train, self.data.y_train, split)
            name = "validation digits"
        else:
            images, labels, name = self.data.x_test, self.data.y_test, "test digits"
        return name, images[:CONFUSION_DIGITS], np.asarray(labels[:CONFUSION_DIGITS]).astype(int)

    def __call__(self, event):
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    # The lesson's own "begin" comes before the model is built and seeded, the loop's after: build the watcher's
    # copy of the network on the first, so that it draws no random numbers from the run's seeded stream.
    def _on_begin(self, event):
        if event.text:
            self._build_model()
            # For the server alone (web/cells.py): the pictures behind the matrix's counts, sent once.
            self.send({"kind": cells.DIGITS_EVENT, "on": self.confusion_on,
                       "pictures": cells.packed(_grey(self.confusion_images), np.uint8),
                       "labels": cells.packed(self.confusion_labels, np.int16)})
            self.send({"kind": "begin", "text": event.text, "model": self.config.model,
                       "strip": {"images": as_bytes(_grey(self.strip_images), 255.0),
                                 "labels": self.strip_labels.tolist()},
                       "class_names": list(self.data.class_names), "confusion_on": self.confusion_on})
            self._obey()
        else:
            self.steps = event.steps
            self.epochs = event.epochs
            self.started = self.clock()
            self.send({"kind": "loop", "epochs": event.epochs, "steps": event.steps,
                       "total_steps": event.epochs * event.steps, "loop": event.facts.get("loop")})

    def _build_model(self):
        from firstnet import model as firstnet_model

        self.model = firstnet_model.build_model(self.config.model, self.data.image_shape, self.data.num_classes,
                                                hidden_units=self.config.hidden_units, augment=self.config.augment)

    def _on_epoch_begin(self, event):
        self.send(_plain(event))
        self._obey()

    def _on_step(self, event):
        done = (event.epoch - 1) * event.steps + event.step
        now = self.clock()
        last_of_epoch = event.step == event.steps
        if now - self.sent_step >= STEP_SECONDS or last_of_epoch:
            self.sent_step = now
            self.send(self._step_payload(event, done, now))
        if now - self.sent_snapshot >= SNAPSHOT_SECONDS or last_of_epoch:
            self.sent_snapshot = now
            self.send(self._snapshot(event, done))
        self._obey()

    def _step_payload(self, event, done, now):
        loss, accuracy = float(event.logs["loss"]), float(event.logs["accuracy"])
        payload = {**_plain(event), "global_step": done}
        # The loops report the epoch's running means; the mean over the batches since the last point is what a
        # curve of "loss per batch, smoothed" shows, without the running mean's lag.
        sums = (event.epoch, event.step, loss * event.step, accuracy * event.step)
        previous = self.previous
        if previous is not None and previous[0] == event.epoch and previous[1] < event.step:
            count = event.step - previous[1]
            payload["batch_loss"] = finite((sums[2] - previous[2]) / count)
            payload["batch_accuracy"] = finite((sums[3] - previous[3]) / count)
        else:
            payload["batch_loss"], payload["batch_accuracy"] = payload["loss"], payload["accuracy"]
        self.previous = sums
        active = now - self.started - self.paused_seconds
        self.rates.append((active, done))
        while len(self.rates) > 2 and active - self.rates[0][0] > RATE_SECONDS:
            self.rates.popleft()
        first_time, first_done = self.rates[0]
        rate = (done - first_done) / (active - first_time) if active > first_time and done > first_done else None
        payload["elapsed"] = round(active, 3)
        payload["steps_per_second"] = None if rate is None else round(rate, 1)
        total = self.epochs * event.steps
        payload["eta_seconds"] = None if rate is None else round((total - done) / rate, 1)
        return payload

    def _snapshot(self, event, done):
        """The first layer's weights of a few units as pictures, and (dense) the strip's guesses from them."""
        values = event.weights() if callable(event.weights) else None
        payload = {"kind": "snapshot", "epoch": event.epoch, "step": event.step, "global_step": done}
        if not values:
            return payload
        kernel = np.asarray(values[0], dtype=np.float32)
        if kernel.ndim == 2:  # Dense: column u of the kernel is unit u's weight on each pixel.
            units = min(DENSE_UNITS, kernel.shape[1])
            pictures = kernel[:, :units].T.reshape(units, *self.data.image_shape)
            pictures = pictures.mean(axis=-1) if pictures.ndim == 4 else pictures
            payload["weights"] = {"what": "hidden units", "pictures": as_bytes(pictures)}
            if len(values) == 4:
                probabilities = _dense_probabilities(values, self.strip_images)
                payload["strip"] = _guesses(probabilities)
        elif kernel.ndim == 4:  # Conv2D: (height, width, channels, filters), one picture per filter.
            filters = min(CONV_FILTERS, kernel.shape[3])
            pictures = kernel[..., :filters].mean(axis=2).transpose(2, 0, 1)
            payload["weights"] = {"what": "filters", "pictures": as_bytes(pictures)}
        return payload

    def _on_checkpoint(self, event):
        """At each epoch's boundary (and where a stop left it), the confusion matrix and the strip, from all weights."""
        if self.model is None or not callable(event.state):
            return
        variables = event.state()["variables"]
        for group in ("trainable", "non_trainable"):
            for variable, value in zip(getattr(self.model, f"{group}_variables"), variables[group]):
                variable.assign(value)
        from firstnet import data as mnist_data

        # One call, one batch shape: the network's program is compiled once for the whole run.
        images = np.concatenate([self.strip_images, self.confusion_images])
        prepared = mnist_data.prepare_images(images, self.model.inputs[0].shape[1:])
        probabilities = np.asarray(self.model.predict(prepared, batch_size=len(prepared), verbose=0))
        guesses = probabilities[len(self.strip_images):].argmax(axis=1)
        classes = self.data.num_classes
        matrix = np.zeros((classes, classes), dtype=int)
        np.add.at(matrix, (self.confusion_labels, guesses), 1)
        strip = _guesses(probabilities[:len(self.strip_images)])
        finished = event.epoch - 1 if event.step == 0 else event.epoch - 1 + event.step / max(event.steps, 1)
        # The probabilities go first, so that the server has them before any viewer sees the matrix they make.
        self.confusion_probabilities = probabilities[len(self.strip_images):].astype(np.float32)
        self.send({"kind": cells.SCORES_EVENT, "after_epochs": round(finished, 3),
                   "probabilities": cells.packed(np.nan_to_num(self.confusion_probabilities), np.float32)})
        self.send({"kind": "evaluation", "after_epochs": round(finished, 3), "confusion": matrix.tolist(),
                   "on": self.confusion_on, "accuracy": finite(np.trace(matrix) / max(matrix.sum(), 1)),
                   "strip": strip})

    def _on_epoch_end(self, event):
        self.send(_plain(event))

    def _on_note(self, event):
        self.send(_plain(event))

    def _on_end(self, event):
        self.send({"kind": "end", "epoch": event.epoch, "epochs": event.epochs,
                   "interrupted": bool(event.facts.get("interrupted")),
                   "text": "evaluating on the test digits and saving the run"})

    def _obey(self):
        """Block while paused; stop (as Ctrl-C does, between batches, keeping what was trained) when asked."""
        control = self.control
        if not control.running.is_set() and not control.stop_asked:
            since = self.clock()
            self.send({"kind": "paused"})
            control.running.wait()
            self.paused_seconds += self.clock() - since
            if not control.stop_asked:
                self.send({"kind": "resumed"})
        if control.stop_asked:
            control.stop_asked = False  # Asked once: evaluating and saving what was trained must not be stopped.
            raise KeyboardInterrupt


def _plain(event):
    """The event as the loops describe it (`Event.as_json`), with a number that training blew up to NaN as None."""
    return {key: finite(value) if isinstance(value, float) else value for key, value in event.as_json().items()}


def _grey(images):
    images = np.asarray(images)
    return images.mean(axis=-1).round().astype(np.uint8) if images.ndim == 4 else images


def _dense_probabilities(values, images):
    """The dense network's answer in NumPy, from a snapshot of its weights: cheap enough to run every snapshot."""
    from firstnet import scratch

    params = dict(zip(scratch.PARAMETER_NAMES, (np.asarray(value, dtype=np.float32) for value in values)))
    pixels = np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255
    return scratch.forward(params, pixels)[1]


def _guesses(probabilities):
    probabilities = np.nan_to_num(np.asarray(probabilities, dtype=np.float64))
    return {"guesses": probabilities.argmax(axis=1).tolist(),
            "confidence": [round(float(value), 3) for value in probabilities.max(axis=1)]}
