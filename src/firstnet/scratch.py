"""The tutorial's network trained from scratch in NumPy: every step `model.fit` does for us, written out by hand.

Dense(512, relu) -> Dense(10, softmax), categorical cross-entropy, RMSprop, shuffled batches of 128: the same
recipe as `firstnet train`, with Keras's exact formulas and defaults, in float32. The maths below uses NumPy
only; Keras appears at the very end, to package the trained weights in the same run folder as `train` writes,
so `firstnet evaluate`, `predict` and the web page can use a from-scratch run too.
"""

import math
import secrets
import time

import numpy as np
import threadpoolctl

from firstnet import loops
from firstnet.data import load_dataset, one_hot, prepare_images
from firstnet.errors import UserError
from firstnet.loops import events
from firstnet.loops.events import REPORT_EVERY

# Keras 3's defaults, read from keras/src/optimizers/rmsprop.py and keras.backend.epsilon().
LEARNING_RATE = 0.001
RHO = 0.9
RMSPROP_EPSILON = 1e-7
PROBABILITY_EPSILON = 1e-7

# One BLAS thread for the matrix products: a batch's matrices are too small to share well, threads waiting for
# a busy core can cost ten times their gain on a shared machine, and a fixed count keeps the float rounding (so
# the metrics of a seed) the same whatever the number of cores.
BLAS_THREADS = 1

# The order of `model.get_weights()` for firstnet's Keras model, so the two can be swapped freely.
PARAMETER_NAMES = ("hidden_kernel", "hidden_bias", "digits_kernel", "digits_bias")


def glorot_limit(fan_in, fan_out):
    """Keras's GlorotUniform draws from [-limit, limit] with limit = sqrt(6 / (fan_in + fan_out))."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def init_params(rng, input_size=784, hidden_units=512, num_classes=10, dtype=np.float32):
    """Glorot-uniform kernels and zero biases, as a Keras Dense layer starts."""

    def glorot_uniform(fan_in, fan_out):
        limit = glorot_limit(fan_in, fan_out)
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)

    return {
        "hidden_kernel": glorot_uniform(input_size, hidden_units),
        "hidden_bias": np.zeros(hidden_units, dtype=dtype),
        "digits_kernel": glorot_uniform(hidden_units, num_classes),
        "digits_bias": np.zeros(num_classes, dtype=dtype),
    }


def relu(values):
    return np.maximum(values, 0)


def softmax(logits):
    """Probabilities per row; subtracting each row's largest logit changes nothing but keeps exp() from overflowing."""
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def forward(params, images):
    """Return the hidden layer's activations (the backward pass needs them) and the 10 probabilities per image."""
    hidden = relu(images @ params["hidden_kernel"] + params["hidden_bias"])
    probabilities = softmax(hidden @ params["digits_kernel"] + params["digits_bias"])
    return hidden, probabilities


def clipped(probabilities):
    """Keras's categorical_crossentropy clips probabilities to [1e-7, 1 - 1e-7] so that log() never sees 0."""
    return np.clip(probabilities, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)


def cross_entropy(probabilities, targets):
    """The loss of each image: minus the log of the (clipped) probability given to its true digit.

    Keras also divides each row by its sum first; after a softmax that sum is already 1, so it is left out.
    """
    return -(targets * np.log(clipped(probabilities))).sum(axis=1)


def loss_and_gradients(params, images, targets):
    """The batch's mean loss, the gradient of that loss for every parameter, and the probabilities (for accuracy)."""
    hidden, probabilities = forward(params, images)
    loss = cross_entropy(probabilities, targets).mean()

    # Softmax followed by cross-entropy has a famously simple gradient with respect to the logits: p - y.
    # Where Keras's clipping was active on the true digit's probability, the loss is flat, so the gradient is 0.
    true_probability = (probabilities * targets).sum(axis=1, keepdims=True)
    logits_gradient = (probabilities - targets) * (clipped(true_probability) == true_probability)
    logits_gradient /= len(images)  # The loss is a mean over the batch.

    # Each dense layer, output = input @ kernel + bias, sends the gradient back the same way.
    hidden_gradient = logits_gradient @ params["digits_kernel"].T
    hidden_gradient *= hidden > 0  # relu lets the gradient through only where the unit was active.
    gradients = {
        "hidden_kernel": images.T @ hidden_gradient,
        "hidden_bias": hidden_gradient.sum(axis=0),
        "digits_kernel": hidden.T @ logits_gradient,
        "digits_bias": logits_gradient.sum(axis=0),
    }
    return loss, gradients, probabilities


def init_rmsprop(params):
    """RMSprop's state, as Keras keeps it: a running average of squared gradients per parameter, and a step count."""
    return {"velocities": {name: np.zeros_like(value) for name, value in params.items()}, "iterations": 0}


def rmsprop_step(params, gradients, state, learning_rate=LEARNING_RATE, rho=RHO, epsilon=RMSPROP_EPSILON):
    """Keras 3's RMSprop update, in place: each step is scaled by the root of a running mean of squared gradients.

    Note where epsilon goes: Keras divides by sqrt(velocity + epsilon), not sqrt(velocity) + epsilon.
    """
    for name, gradient in gradients.items():
        velocity = state["velocities"][name]
        velocity *= rho
        velocity += (1 - rho) * np.square(gradient)
        params[name] -= learning_rate * gradient / np.sqrt(velocity + epsilon)
    state["iterations"] += 1


def count_correct(probabilities, targets):
    """Keras's "accuracy" for one-hot targets: the most probable digit is the true one."""
    return int((probabilities.argmax(axis=1) == targets.argmax(axis=1)).sum())


def train_epoch(params, rmsprop_state, images, targets, batch_size, rng, learning_rate=LEARNING_RATE, on_batch=None):
    """One pass over the shuffled images in batches (the last one may be smaller); returns (loss, accuracy).

    Like Keras, the loss and accuracy are averaged over the epoch as the weights change, weighting each batch
    by its size. `on_batch(step, loss, accuracy)`, if given, sees the running means after each batch.
    """
    order = rng.permutation(len(images))
    total_loss, correct, seen = 0.0, 0, 0
    with threadpoolctl.threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        for step, start in enumerate(range(0, len(images), batch_size), start=1):
            batch = order[start : start + batch_size]
            batch_targets = targets[batch]
            loss, gradients, probabilities = loss_and_gradients(params, images[batch], batch_targets)
            rmsprop_step(params, gradients, rmsprop_state, learning_rate=learning_rate)
            total_loss += float(loss) * len(batch)
            correct += count_correct(probabilities, batch_targets)
            seen += len(batch)
            if on_batch is not None:
                on_batch(step, total_loss / seen, correct / seen)
    return total_loss / len(images), correct / len(images)


def predict(params, images, batch_size=4096):
    """Probabilities for many images, a chunk at a time so the hidden activations stay small in memory."""
    with threadpoolctl.threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        chunks = [forward(params, images[start : start + batch_size])[1] for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks)


def evaluate(params, images, targets):
    """Mean loss and accuracy on a labelled set, as `model.evaluate` reports them, plus the probabilities."""
    probabilities = predict(params, images)
    return {
        "loss": float(cross_entropy(probabilities, targets).mean()),
        "accuracy": count_correct(probabilities, targets) / len(images),
        "probabilities": probabilities,
    }


def fit(params, rmsprop_state, images, targets, epochs, batch_size, rng, learning_rate=LEARNING_RATE,
        validation_split=0.0, emit=None, report_every=REPORT_EVERY):
    """Train in place for some epochs, telling `emit` (loops/events.py) what happens; returns whether Ctrl-C ended it.

    The digits held out for validation are those Keras's validation_split holds out (`loops.split_validation`).
    Ctrl-C stops training between batches and keeps the weights as they are, like `model.fit` does.
    """
    emit = emit or (lambda kind, **fields: None)
    (train_images, train_targets), validation = loops.split_validation(images, targets, validation_split)
    steps = -(-len(train_images) // batch_size)
    try:
        for epoch in range(1, epochs + 1):
            emit("epoch_begin", epoch=epoch, epochs=epochs, steps=steps)

            def on_batch(step, loss, accuracy):
                if step % report_every == 0 or step == steps:
                    emit("step", epoch=epoch, epochs=epochs, step=step, steps=steps,
                         logs={"accuracy": accuracy, "loss": loss},
                         weights=lambda: [params[name].copy() for name in PARAMETER_NAMES])

            loss, accuracy = train_epoch(params, rmsprop_state, train_images, train_targets, batch_size, rng,
                                         learning_rate, on_batch=on_batch)
            logs = {"accuracy": accuracy, "loss": loss}
            if validation:
                scores = evaluate(params, *validation)
                logs.update({"val_accuracy": scores["accuracy"], "val_loss": scores["loss"]})
            emit("epoch_end", epoch=epoch, epochs=epochs, step=steps, steps=steps, logs=logs)
    except KeyboardInterrupt:
        # A learner who stops training early still gets the model trained so far, evaluated and saved.
        emit("note", text="Interrupted: evaluating and saving the model as trained so far (Ctrl-C again to abandon it).")
        return True
    return False


def to_keras_model(params, rmsprop_state=None, learning_rate=LEARNING_RATE):
    """firstnet's Keras model holding these weights, compiled as `train` compiles it, ready to save or evaluate.

    The optimizer's state goes in too, as in a model saved after `fit`, so Keras could carry on training it.
    """
    from firstnet import model as firstnet_model  # Keras only where the result is packaged, as in `train` below.

    model = firstnet_model.build_model(hidden_units=len(params["hidden_bias"]), input_size=len(params["hidden_kernel"]),
                                       num_classes=len(params["digits_bias"]))
    firstnet_model.compile_model(model, optimizer="rmsprop", learning_rate=learning_rate)
    model.set_weights([params[name] for name in PARAMETER_NAMES])
    rmsprop_state = rmsprop_state or init_rmsprop(params)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(rmsprop_state["iterations"])
    for variable in optimizer.variables:
        for name, velocity in rmsprop_state["velocities"].items():
            if variable.name.endswith(f"{name}_velocity"):  # Keras names them like "firstnet_hidden_kernel_velocity".
                variable.assign(velocity)
    return model


def train(config=None, data=None, watchers=()):
    """`firstnet train`'s lesson done by the NumPy twin: same config, same run folder, same TrainResult.

    `config` is a `firstnet.train.TrainConfig`; only optimizer "rmsprop" (the tutorial's) is written from scratch.
    """
    # Keras is imported only here, to package the result as `train` does; the learning below is NumPy alone.
    from firstnet import evaluate as firstnet_evaluate, runs, train as keras_train

    config = config or keras_train.TrainConfig()
    if config.optimizer != "rmsprop":
        raise UserError(f"--optimizer {config.optimizer}: the from-scratch twin implements only rmsprop, the "
                        f"tutorial's; use `firstnet train --optimizer {config.optimizer}` for the others")
    if config.learning_rate_schedule != "constant":
        raise UserError(f"learning rate schedule {config.learning_rate_schedule}: the from-scratch twin keeps the "
                        f"tutorial's constant learning rate; use `firstnet train` for a schedule")
    config.check()
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    history = events.History()
    emit = events.Broadcast([history, *watchers])
    with runs.new_run(config.run_dir, root=config.runs_root) as run_dir:
        data = data or load_dataset(config.data)
        train_images, train_targets = prepare_images(data.x_train), one_hot(data.y_train)
        # Keras keeps its learning rate as a float32 variable; so does the twin, so both report the same number.
        learning_rate = float(np.float32(config.learning_rate or LEARNING_RATE))
        emit("begin", text=f"Training Dense({config.hidden_units}, relu) -> Dense(10, softmax) from scratch in NumPy "
                           f"on {len(train_images)} digits ({data.source}): {config.epochs} epochs, batch "
                           f"{config.batch_size}, rmsprop, seed {seed}")

        # One seed drives the initial weights and the shuffling, so a run can be repeated.
        rng = np.random.default_rng(seed)
        params = init_params(rng, hidden_units=config.hidden_units)
        rmsprop_state = init_rmsprop(params)
        started = time.perf_counter()
        interrupted = fit(params, rmsprop_state, train_images, train_targets, config.epochs, config.batch_size, rng,
                          learning_rate=learning_rate, validation_split=config.validation_split, emit=emit)
        fitted = loops.Fitted(history=history.history, interrupted=interrupted, loop="scratch",
                              facts={"fit_seconds": time.perf_counter() - started,
                                     # The twin multiplies every pixel, blank or not.
                                     "first_layer_columns": float(data.x_train[0].size)})

        started = time.perf_counter()
        scores = evaluate(params, prepare_images(data.x_test), one_hot(data.y_test))
        scores = {"test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
                  "confusion": firstnet_evaluate.confusion_matrix(data.y_test, scores["probabilities"].argmax(axis=1)),
                  "seconds": time.perf_counter() - started}
        model = to_keras_model(params, rmsprop_state, learning_rate=learning_rate)
        metrics = keras_train.run_metrics(config, seed, data, fitted, scores, model=model, backend="numpy-scratch")
        runs.save_run(run_dir, model, fitted.history, metrics)
    return keras_train.TrainResult(run_dir=run_dir, model=model, history=fitted.history, metrics=metrics)
