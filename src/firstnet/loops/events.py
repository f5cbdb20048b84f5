"""What a training loop tells its watchers: the run begins, each epoch begins and ends, steps go by, the run ends.

Both loops (Keras's `model.fit` and the compiled loop) send the same events with the same meaning, so everything
that watches training (the CLI's progress bar, the history a run saves, the web page, the tests) is written once.
A watcher is any callable that takes one `Event`.
"""

import dataclasses
import sys
import time

# A loop reports a step event every this many steps (and at the last step of each epoch): often enough to draw a
# smooth curve, rarely enough that reporting costs nothing next to the training itself.
REPORT_EVERY = 50

KINDS = ("begin", "epoch_begin", "step", "epoch_end", "checkpoint", "note", "end", "saved")


@dataclasses.dataclass
class Event:
    """One thing that happened in training; only the fields that belong to its kind are set.

    kind: one of KINDS. epoch counts from 1, step from 1 within the epoch (steps per epoch in `steps`).
    logs: the epoch's running means so far ("loss", "accuracy"; at an epoch's end also "val_loss" and
    "val_accuracy" when part of the data is held out). text: for "begin" and "note", a line for people.
    weights: for "step" events, a function returning the trainable values at that step (as NumPy arrays, in
    `model.trainable_variables` order), for watchers that want to see the network change.
    state: for "checkpoint" events, a function returning what the run needs to go on from `epoch` with `step`
    steps of it done (checkpoints.py writes it): the variables, the epoch's totals and the shuffling state.
    """

    kind: str
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    steps: int | None = None
    logs: dict | None = None
    text: str | None = None
    facts: dict | None = None
    weights: object = None
    state: object = None
    time: float = dataclasses.field(default_factory=time.perf_counter)

    def as_json(self):
        """The event as plain JSON-ready values (no weights), as the web page's event stream sends it."""
        found = {"kind": self.kind}
        for name in ("epoch", "epochs", "step", "steps", "text", "facts"):
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        for name, value in (self.logs or {}).items():
            found[name] = float(value)
        return found


class Broadcast:
    """Sends each event to every watcher, in the order they were given."""

    def __init__(self, watchers=()):
        self.watchers = [watcher for watcher in watchers if watcher is not None]

    def __call__(self, kind, **fields):
        event = Event(kind, **fields)
        for watcher in self.watchers:
            watcher(event)
        return event


class History:
    """The Keras-style history of a run, {"loss": [per epoch], "accuracy": [...], ...}, built from epoch-end events."""

    def __init__(self, history=None):
        # A resumed run starts from the epochs its checkpoint had already finished.
        self.history = {"loss": [], "accuracy": [], **{key: list(values) for key, values in (history or {}).items()}}

    def __call__(self, event):
        if event.kind == "epoch_end":
            for key, value in event.logs.items():
                self.history.setdefault(key, []).append(float(value))


class ProgressBar:
    """The CLI's view of training: the run's description, then "Epoch k/n" and a progress bar per epoch.

    On a terminal the bar is Keras's own, redrawn in place. Into a file or a pipe it writes plain lines only, one
    per epoch, with no carriage returns or colour codes to garble a log.
    """

    def __init__(self, stream=None, show_progress=True):
        self.stream = stream or sys.stdout
        self.show_progress = show_progress
        self.bar = None

    def __call__(self, event):
        if event.kind == "note":
            print(event.text, file=sys.stderr, flush=True)
        elif event.kind == "begin":
            # The lesson's begin event says what is trained; the loop's own says only how, for other watchers.
            if self.show_progress and event.text:
                print(event.text, file=self.stream, flush=True)
        elif not self.show_progress:
            return
        elif event.kind == "epoch_begin":
            if event.epochs > 1:
                print(f"Epoch {event.epoch}/{event.epochs}", file=self.stream, flush=True)
            self.bar = self._keras_bar(event.steps) if _is_terminal(self.stream) else None
        elif event.kind == "step" and self.bar is not None and event.step < event.steps:
            self.bar.update(event.step, list(event.logs.items()), finalize=False)
        elif event.kind == "epoch_end":
            if self.bar is not None:
                self.bar.update(event.steps, list(event.logs.items()), finalize=True)
            else:
                numbers = " - ".join(f"{key}: {value:.4f}" for key, value in event.logs.items())
                print(f"{event.steps}/{event.steps} steps - {numbers}", file=self.stream, flush=True)
            self.bar = None

    @staticmethod
    def _keras_bar(steps):
        import keras

        return keras.utils.Progbar(target=steps, verbose=1, unit_name="step", stateless_metrics=set())


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
