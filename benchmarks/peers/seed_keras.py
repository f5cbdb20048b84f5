"""The seed tutorial's script as written, on whatever Keras backend KERAS_BACKEND names (tensorflow by default)."""

from common import Clock, load_mnist, parse_args, print_result

clock = Clock()
args = parse_args(__doc__)

import keras  # noqa: E402  (the tutorial imports Keras after loading its tools; timed as part of the process)
from keras import layers, models  # noqa: E402
from keras.utils import to_categorical  # noqa: E402

import_seconds = clock.seconds()
keras.utils.set_random_seed(args.seed)

# The tutorial's `mnist.load_data()`, read from the file Keras would have downloaded.
(train_images, train_labels), (test_images, test_labels) = load_mnist(args.data)

train_images = train_images.reshape((60000, 28 * 28))
train_images = train_images.astype("float32") / 255
test_images = test_images.reshape((10000, 28 * 28))
test_images = test_images.astype("float32") / 255

model = models.Sequential()
model.add(keras.Input(shape=(28 * 28,)))
model.add(layers.Dense(512, activation="relu"))
model.add(layers.Dense(10, activation="softmax"))
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])

train_labels = to_categorical(train_labels)
test_labels = to_categorical(test_labels)

fit_started = clock.seconds()
if args.max_steps:
    limit = args.max_steps * args.batch_size
    train_images, train_labels = train_images[:limit], train_labels[:limit]
model.fit(train_images, train_labels, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
fit_seconds = clock.seconds() - fit_started

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
print("test_acc:", test_acc)
print("test_loss:", test_loss)
print_result(backend=keras.backend.backend(), import_seconds=import_seconds, fit_seconds=fit_seconds,
             test_accuracy=float(test_acc), test_loss=float(test_loss), process_seconds=clock.seconds())
