"""keras-io's "Simple MNIST convnet", its recipe as published, on whatever Keras backend KERAS_BACKEND names.

Conv2D(32, 3) - MaxPooling - Conv2D(64, 3) - MaxPooling - Flatten - Dropout(0.5) - Dense(10, softmax) (34,826
weights), adam, batch 128, 15 epochs, validation_split 0.1. After each epoch the test digits are scored, with the
clock stopped, so that the time to 99.2% counts only the peer's own work.
"""

from common import Clock, load_mnist, parse_args, print_result

clock = Clock()
args = parse_args(__doc__)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

import_seconds = clock.seconds()
keras.utils.set_random_seed(args.seed)
(x_train, y_train), (x_test, y_test) = load_mnist(args.data)
x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
if args.max_steps:
    x_train, y_train = x_train[:args.max_steps * args.batch_size], y_train[:args.max_steps * args.batch_size]

model = keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
                          layers.MaxPooling2D(pool_size=(2, 2)), layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                          layers.MaxPooling2D(pool_size=(2, 2)), layers.Flatten(), layers.Dropout(0.5),
                          layers.Dense(10, activation="softmax")])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])


class TimeToTarget(keras.callbacks.Callback):
    """Scores the test digits after each epoch, with the clock stopped; remembers when 99.2% was first reached."""

    def __init__(self):
        super().__init__()
        self.paused = 0.0
        self.reached = None
        self.accuracies = []

    def on_epoch_end(self, epoch, logs=None):
        started = clock.seconds()
        accuracy = float(self.model.evaluate(x_test, y_test, verbose=0)[1])
        self.accuracies.append(accuracy)
        if self.reached is None and accuracy >= args.target:
            self.reached = started - self.paused
            self.model.stop_training = args.stop_at_target
        self.paused += clock.seconds() - started


watcher = TimeToTarget()
fit_started = clock.seconds()
model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1, verbose=0,
          callbacks=[watcher])
fit_seconds = clock.seconds() - fit_started - watcher.paused
print_result(backend=keras.backend.backend(), import_seconds=import_seconds, fit_seconds=fit_seconds,
             test_accuracy=watcher.accuracies[-1], accuracies=watcher.accuracies, seconds_to_target=watcher.reached,
             process_seconds=clock.seconds() - watcher.paused, paused_seconds=watcher.paused)
