"""Keras's own `model.fit`, the tutorial's call, reporting its progress as firstnet's events (any backend)."""

import keras
import numpy as np

from firstnet.loops import events


def fit(model, data, config, seed, emit, report_every=events.REPORT_EVERY):
    """`model.fit(train_images, train_labels, epochs, batch_size)` as the tutorial writes it, watched by `emit`.

    The tutorial's preparation comes first: float32 pixels in 0..1 and one-hot labels. The digits held out for
    validation are the ones Keras's `validation_split` would hold out (`loops.split_validation`). `seed` is
    already set by the lesson (`keras.utils.set_random_seed`), which also drives fit's shuffling. Returns the
    facts this loop knows about itself.
    """
    from firstnet import data as mnist_data, loops

    (train_images, train_labels), validation = loops.split_validation(data.x_train, data.y_train,
                                                                      config.validation_split)
    num_classes = model.outputs[0].shape[-1]
    validation_data = None
    if validation is not None:
        validation_data = (mnist_data.prepare_images(validation[0]),
                           keras.utils.to_categorical(validation[1], num_classes=num_classes))
    steps = -(-len(train_images) // config.batch_size)
    model.fit(mnist_data.prepare_images(train_images), keras.utils.to_categorical(train_labels, num_classes=num_classes),
              epochs=config.epochs, batch_size=config.batch_size, validation_data=validation_data, verbose=0,
              callbacks=[_Reporter(emit, config.epochs, steps, report_every)])
    return {"compile_seconds": None}


def _trainable_values(model):
    return [np.asarray(keras.ops.convert_to_numpy(variable.value)) for variable in model.trainable_variables]


class _Reporter(keras.callbacks.Callback):
    """A Keras callback that turns fit's epochs and batches into firstnet's events."""

    def __init__(self, emit, epochs, steps, report_every):
        super().__init__()
        self.emit, self.epochs, self.steps, self.report_every = emit, epochs, steps, report_every
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self.emit("epoch_begin", epoch=self.epoch, epochs=self.epochs, steps=self.steps)

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if step % self.report_every and step != self.steps:
            return
        model = self.model
        self.emit("step", epoch=self.epoch, epochs=self.epochs, step=step, steps=self.steps,
                  logs=_running_logs(logs), weights=lambda: _trainable_values(model))

    def on_epoch_end(self, epoch, logs=None):
        self.emit("epoch_end", epoch=epoch + 1, epochs=self.epochs, step=self.steps, steps=self.steps,
                  logs=_running_logs(logs))


def _running_logs(logs):
    """fit's logs as plain floats, in the order the progress bar shows them: accuracy, loss, then validation."""
    logs = {key: float(value) for key, value in (logs or {}).items()}
    order = ("accuracy", "loss", "val_accuracy", "val_loss")
    return {key: logs[key] for key in order if key in logs}
