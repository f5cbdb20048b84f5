"""Keras's own `model.fit`, the tutorial's call, reporting its progress as firstnet's events (any backend)."""

import contextlib
import signal
import threading

import keras
import numpy as np

from firstnet import loops
from firstnet.data import prepare_images
from firstnet.errors import UserError
from firstnet.loops import events


def fit(model, data, config, seed, emit, report_every=events.REPORT_EVERY, resume=None, devices=None):
    """`model.fit(train_images, train_labels, epochs, batch_size)` as the tutorial writes it, watched by `emit`.

    The tutorial's preparation comes first: float32 pixels in 0..1 and one-hot labels. The digits held out for
    validation are the ones Keras's `validation_split` would hold out (`loops.split_validation`). `seed` is
    already set by the lesson (`keras.utils.set_random_seed`), which also drives fit's shuffling. Returns the
    facts this loop knows about itself.

    Checkpoints are kept at the start and at each epoch's end only: model.fit cannot start an epoch at a given
    batch. Its shuffling draws from NumPy's global generator when each epoch begins, so a checkpoint keeps that
    generator's state with the variables, and `resume` (a checkpoints.Checkpoint) restores both and starts fit at
    the checkpoint's epoch: a run stopped mid-epoch does that epoch again from its start, in the same order.

    With several `devices`, Keras's DataParallel splits every batch across them; a batch that does not split
    evenly would fail (keras #21167), so then the batches come padded (`PaddedBatches`).
    """
    (train_images, train_labels), validation = loops.split_validation(data.x_train, data.y_train,
                                                                      config.validation_split)
    num_classes = model.outputs[0].shape[-1]
    # Each picture as the model takes it: a flat row for the dense network, height x width x channels for a convnet.
    input_shape = model.inputs[0].shape[1:]
    validation_data = None
    if validation is not None:
        validation_data = (prepare_images(validation[0], input_shape),
                           keras.utils.to_categorical(validation[1], num_classes=num_classes))
    steps = -(-len(train_images) // config.batch_size)
    if resume is not None and (resume.meta["loop"] != "fit" or resume.step != 0):
        raise UserError(f"--resume {resume.run_dir}: cannot resume: its checkpoint was written by the "
                        f"{resume.meta['loop']} loop, which cannot run here")
    model.optimizer.build(model.trainable_variables)
    if resume is not None:
        resume.restore(model)
    train_images = prepare_images(train_images, input_shape)
    train_targets = keras.utils.to_categorical(train_labels, num_classes=num_classes)
    inputs = {"x": train_images, "y": train_targets, "batch_size": config.batch_size}
    if devices is not None and devices.count > 1 and not _splits_evenly(len(train_images), config.batch_size, devices):
        inputs = {"x": PaddedBatches(train_images, train_targets, config.batch_size, devices, shuffle=True)}
        if validation_data is not None:
            validation_data = PaddedBatches(*validation_data, config.batch_size, devices, shuffle=False)
    reporter = _Reporter(emit, config.epochs, steps, report_every, resume)
    with _interrupt_between_batches(reporter):
        model.fit(**inputs, epochs=config.epochs, initial_epoch=resume.epoch - 1 if resume else 0,
                  validation_data=validation_data, verbose=0, callbacks=[reporter])
        reporter._stop_if_asked()  # A Ctrl-C after the last batch (while validating) still counts.
    return {"compile_seconds": None}


@contextlib.contextmanager
def _interrupt_between_batches(reporter):
    """Ctrl-C during model.fit stops it at the next batch's end, where Python is in charge, not inside a step.

    A KeyboardInterrupt raised in the middle of a backend's own native code can break it (TensorFlow aborted with
    "free(): invalid next size" in our tests). So the first Ctrl-C only asks, and the reporter stops fit between
    two batches; a second Ctrl-C stops at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def ask_to_stop(number, frame):
        signal.signal(signal.SIGINT, previous)  # The next Ctrl-C is the ordinary one.
        reporter.stop_asked = True

    signal.signal(signal.SIGINT, ask_to_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _splits_evenly(count, batch_size, devices):
    """Whether every batch of `count` digits, the last one included, splits evenly across the devices."""
    return batch_size % devices.count == 0 and (count % batch_size) % devices.count == 0


class PaddedBatches(keras.utils.PyDataset):
    """fit's batches of `batch_size` digits, each padded to a whole share per device with digits that weigh nothing.

    Keras divides a batch's sum of weighted losses by its number of rows, so each real digit weighs rows / digits:
    the loss stays the mean over the batch's own digits, and so does the gradient. (The epoch's running accuracy
    then counts a padded batch's digits a little more, rows / digits each; the training itself is unchanged.)
    The shuffle draws from NumPy's generator, as fit's own does, so a seed gives the same batches.
    """

    def __init__(self, images, targets, batch_size, devices, shuffle):
        super().__init__()
        self.images, self.targets, self.batch_size, self.devices = images, targets, batch_size, devices
        self.shuffle = shuffle
        self.order = np.random.permutation(len(images)) if shuffle else np.arange(len(images))

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        places = self.devices.padded(len(rows))
        padded = np.concatenate([rows, np.zeros(places - len(rows), dtype=rows.dtype)])
        weights = np.zeros(places, dtype=np.float32)
        weights[:len(rows)] = places / len(rows)
        return self.images[padded], self.targets[padded], weights

    def on_epoch_end(self):
        if self.shuffle:
            self.order = np.random.permutation(len(self.images))


def _fit_state(model):
    """What a checkpoint keeps at an epoch boundary: the variables and NumPy's global generator, which fit shuffles with."""
    state = np.random.get_state(legacy=False)
    shuffling = {**state, "state": {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}}
    if keras.backend.backend() == "torch":
        # On torch, fit shuffles with a torch sampler, seeded from torch's own default generator each epoch.
        import torch

        shuffling["torch"] = torch.get_rng_state().numpy().tolist()
    return {"loop": "fit", "shuffling": shuffling, "variables": {
        "trainable": [np.asarray(keras.ops.convert_to_numpy(variable.value)) for variable in model.trainable_variables],
        "non_trainable": [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.non_trainable_variables],
        "optimizer": [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.optimizer.variables]}}


def _restore_shuffling(saved):
    """Put back the generators fit shuffles with: NumPy's global one, and on torch torch's default one."""
    numpy_state = {key: value for key, value in saved.items() if key != "torch"}
    numpy_state["state"] = {"key": np.asarray(saved["state"]["key"], dtype=np.uint32), "pos": saved["state"]["pos"]}
    np.random.set_state(numpy_state)
    if "torch" in saved:
        import torch

        torch.set_rng_state(torch.tensor(saved["torch"], dtype=torch.uint8))


def _trainable_values(model):
    return [np.asarray(keras.ops.convert_to_numpy(variable.value)) for variable in model.trainable_variables]


class _Reporter(keras.callbacks.Callback):
    """A Keras callback that turns fit's epochs and batches into firstnet's events."""

    def __init__(self, emit, epochs, steps, report_every, resume=None):
        super().__init__()
        self.emit, self.epochs, self.steps, self.report_every = emit, epochs, steps, report_every
        self.resume = resume
        self.epoch = 0
        self.stop_asked = False

    def _stop_if_asked(self):
        if self.stop_asked:
            self.stop_asked = False
            raise KeyboardInterrupt

    def on_train_begin(self, logs=None):
        # Before its first epoch, fit builds its metrics on one batch, drawing a shuffle of its own: the state that
        # the epochs shuffle from is the one here, after that draw, and so it is kept and restored here.
        if self.resume is not None:
            _restore_shuffling(self.resume.shuffling)
        else:
            self.emit("checkpoint", epoch=1, step=0, steps=self.steps, state=lambda: _fit_state(self.model))

    def on_epoch_begin(self, epoch, logs=None):
        self._stop_if_asked()
        self.epoch = epoch + 1
        self.emit("epoch_begin", epoch=self.epoch, epochs=self.epochs, steps=self.steps)

    def on_train_batch_end(self, batch, logs=None):
        self._stop_if_asked()
        step = batch + 1
        if step % self.report_every and step != self.steps:
            return
        model = self.model
        self.emit("step", epoch=self.epoch, epochs=self.epochs, step=step, steps=self.steps,
                  logs=_running_logs(logs), weights=lambda: _trainable_values(model))

    def on_epoch_end(self, epoch, logs=None):
        self.emit("epoch_end", epoch=epoch + 1, epochs=self.epochs, step=self.steps, steps=self.steps,
                  logs=_running_logs(logs))
        self.emit("checkpoint", epoch=epoch + 2, step=0, steps=self.steps, state=lambda: _fit_state(self.model))


def _running_logs(logs):
    """fit's logs as plain floats, in the order the progress bar shows them: accuracy, loss, then validation."""
    logs = {key: float(value) for key, value in (logs or {}).items()}
    order = ("accuracy", "loss", "val_accuracy", "val_loss")
    return {key: logs[key] for key in order if key in logs}
