"""model.fit's and model.evaluate's work for the tutorial's network as compiled JAX programs: the same numbers, faster."""

import time

import numpy as np

# Batches of the training loop that run as one call to the compiled program between two progress-bar updates.
STEPS_PER_CALL = 50

# The tutorial's `astype("float32") / 255` of each of the 256 pixel values, computed by NumPy. Compiled code looks
# pixels up here: XLA turns a division by 255 into a multiplication, one unit in the last place off for half of them.
PIXEL_VALUES = np.arange(256, dtype=np.float32) / 255


def supported(model):
    """The compiled loop computes exactly what `compile_model` asked for, on JAX; anything else goes to model.fit."""
    import keras

    compiled_with = model.get_compile_config()
    return (keras.backend.backend() == "jax" and compiled_with.get("loss") == "categorical_crossentropy"
            and list(compiled_with.get("metrics") or []) == ["accuracy"])


def fit(model, data, config, seed, shuffle=True, on_step=None):
    """`model.fit` as one compiled JAX program per group of batches, fed with the uint8 digits kept on the device.

    What is computed is fit's own work, through Keras's public stateless API: the tutorial's model
    (`model.stateless_call`), its loss (categorical cross-entropy of the softmax output), its optimizer
    (`optimizer.stateless_apply`), shuffled batches of `batch_size` with the last one smaller, and the epoch's
    running mean loss and accuracy in the history. What changes is where the work happens: Python hands the
    device a whole epoch at a time (50 batches between two progress-bar updates) instead of one batch, the pixels
    stay uint8 until the compiled step turns them into the tutorial's float32 values (no float32 copy of the data
    is shuffled each epoch), the pixels that are blank in every digit of a batch are left out of the first
    layer's products (blanks.py: they add exact zeros), and on a CPU one slow matrix product is kept fast
    (`_kept_product`).

    `on_step(step, logs, trainable)`, if given, is called after every step (numbered from 1 in each epoch) with
    the epoch's running loss and accuracy and the trainable values in `model.trainable_variables` order; the
    steps then run one call each, through the same compiled program, so the numbers are those of an ordinary run.

    Returns the history, whether Ctrl-C ended training early, and facts about the loop: `compile_seconds` and
    `first_layer_columns`, the pixels per digit that the first layer's products took on average (of 784 on MNIST).
    """
    import jax

    from firstnet import blanks

    train_images, train_labels, validation = _split_validation(data, config.validation_split)
    train_count = len(train_images)
    steps = -(-train_count // config.batch_size)
    pixels = np.ascontiguousarray(train_images.reshape(train_count, -1))
    images = jax.device_put(pixels)
    labels = jax.device_put(train_labels.astype(np.int32))
    masks = blanks.digit_masks(pixels)
    model.optimizer.build(model.trainable_variables)
    state = _read_state(model)
    shuffling = np.random.default_rng(seed)

    # One compiled program per width; an epoch whose batches need more columns than any so far gets a new one.
    programs = {}
    compile_seconds = 0.0

    def plan_epoch():
        """The epoch's shuffled digits, and for each batch the columns of the pixels not blank in all its digits."""
        order, weights = _epoch_order(shuffling if shuffle else None, train_count, steps, config.batch_size)
        used = blanks.batch_pixels_used(masks, order, config.batch_size, pixels.shape[1])
        needed = blanks.width_for(used)
        width = min((known for known in programs if known >= needed), default=needed)
        return width, (order, weights, *blanks.batch_columns(used, width))

    def program_for(width, plan):
        nonlocal compile_seconds
        if width not in programs:
            started = time.perf_counter()
            program = _training_program(model, config.batch_size, pixels.shape[1], width)
            programs[width] = program.lower(state, _zero_totals(), images, labels, *plan, 0, 1).compile()
            compile_seconds += time.perf_counter() - started
        return programs[width]

    width, plan = plan_epoch()
    program_for(width, plan)
    history = {"loss": [], "accuracy": []}
    widths = []
    progress = _Progress(config.verbose, config.epochs, steps)
    interrupted = False
    try:
        for epoch in range(config.epochs):
            run_steps = program_for(width, plan)
            widths.append(width)
            progress.start(epoch)
            totals = _zero_totals()
            # Without a progress bar the whole epoch is one call; the loop body is the same program either way.
            per_call = 1 if on_step else STEPS_PER_CALL if config.verbose == 1 else steps
            for first in range(0, steps, per_call):
                count = min(per_call, steps - first)
                state, totals = run_steps(state, totals, images, labels, *plan, first, count)
                if on_step:
                    on_step(first + count, _epoch_logs(totals), state[0])
                if config.verbose == 1 and first + count < steps:  # The epoch's last bar is `finish`'s.
                    progress.update(first + count, _epoch_logs(totals))
            if epoch + 1 < config.epochs:
                # Planned while the compiled program still runs the epoch's last steps.
                width, plan = plan_epoch()
            logs = _epoch_logs(totals)
            if validation is not None:
                _write_back(model, state)
                logs.update(_validation_logs(model, validation, config.batch_size))
                # Keras's evaluate may donate the variables' buffers to its own program: read them back.
                state = _read_state(model)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            progress.finish(logs)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: evaluating and saving the model as trained so far (Ctrl-C again to abandon it).")
    _write_back(model, state)
    return history, interrupted, {"compile_seconds": compile_seconds,
                                  "first_layer_columns": float(np.mean(widths)) if widths else None}


def training_count(count, validation_split):
    """How many of `count` digits are trained on after Keras's validation_split: the first count * (1 - split)."""
    return int(np.floor(count * (1.0 - validation_split))) if validation_split else count


def _split_validation(data, validation_split):
    """Keras's rule for validation_split: the last fraction of the training digits, before any shuffling."""
    if not validation_split:
        return data.x_train, data.y_train, None
    split_at = training_count(len(data.x_train), validation_split)
    if split_at in (0, len(data.x_train)):
        raise ValueError(f"validation_split {validation_split} leaves no digits for training or for validation "
                         f"out of {len(data.x_train)}")
    return data.x_train[:split_at], data.y_train[:split_at], (data.x_train[split_at:], data.y_train[split_at:])


def _epoch_order(shuffling, count, steps, batch_size):
    """A new shuffle of the digits (none without `shuffling`), padded to whole batches of which the padding weighs 0."""
    order = np.zeros(steps * batch_size, dtype=np.int32)
    order[:count] = shuffling.permutation(count) if shuffling is not None else np.arange(count)
    weights = np.zeros(steps * batch_size, dtype=np.float32)
    weights[:count] = 1.0
    return order, weights


def _training_program(model, batch_size, pixels, width):
    """A jitted function that runs `count` training steps from step `first` of an epoch, on the device.

    Its `images` are the digits as uint8 rows of `pixels` pixels. With a `width` below `pixels`, the first
    layer's products of each step run over the batch's `width` columns only (see blanks.py), given per batch as
    `columns` and `positions`; otherwise those two are not used.
    """
    import jax
    from jax import numpy as jnp
    from keras import ops

    from firstnet import blanks, retrace

    optimizer = model.optimizer
    num_classes = model.outputs[0].shape[-1]
    skip_blanks = width < pixels

    gradient = jax.value_and_grad(_loss_function(model), has_aux=True)
    # The traced step is run again once, with these rules deciding how some of its products are computed.
    rules = [_kept_product] if jax.default_backend() == "cpu" else []
    if skip_blanks:
        gradient = blanks.products_on_columns(gradient, *rules)
    elif rules:
        gradient = retrace.replaced(gradient, *rules)

    def run_steps(state, totals, images, labels, order, weights, columns, positions, first, count):
        def one_step(step, carry):
            (trainable, non_trainable, optimizer_variables), (loss_total, correct, seen) = carry
            rows = jax.lax.dynamic_slice_in_dim(order, step * batch_size, batch_size)
            batch_weights = jax.lax.dynamic_slice_in_dim(weights, step * batch_size, batch_size)
            # The tutorial's preparation, done here on the device: pixels as float32 in 0..1, labels one-hot.
            # With blanks skipped, nothing uses the full batch_images and XLA leaves them out of the program.
            batch_images = scale_pixels(jnp.take(images, rows, axis=0))
            batch_labels = jnp.take(labels, rows, axis=0)
            targets = ops.one_hot(batch_labels, num_classes)
            arguments = (trainable, non_trainable, batch_images, targets, batch_weights)
            if skip_blanks:
                batch_columns = columns[step]
                selected = scale_pixels(blanks.selected_pixels(images, rows, batch_columns))
                arguments += (batch_columns, positions[step], selected)
            (loss, (probabilities, non_trainable)), gradients = gradient(*arguments)
            trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, gradients, trainable)
            # fit's running means: the loss weighted by batch size, the accuracy over all digits seen so far.
            batch_count = ops.sum(batch_weights)
            hits = ops.sum(ops.cast(ops.argmax(probabilities, axis=-1) == batch_labels, "float32") * batch_weights)
            return (trainable, non_trainable, optimizer_variables), (loss_total + loss * batch_count, correct + hits,
                                                                     seen + batch_count)

        return jax.lax.fori_loop(first, first + count, one_step, (state, totals))

    return jax.jit(run_steps)


def _loss_function(model):
    """fit's loss of one batch, from the trainable and non-trainable values, with the outputs it needs."""
    from keras import ops

    def loss_and_outputs(trainable, non_trainable, images, targets, weights):
        probabilities, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        # Keras's categorical cross-entropy, averaged over the digits of this batch (the padding weighs 0).
        per_digit = ops.categorical_crossentropy(targets, probabilities)
        loss = ops.sum(per_digit * weights) / ops.sum(weights)
        return loss, (probabilities, non_trainable)

    return loss_and_outputs


def _kept_product(equation, inputs):
    """A retrace rule that keeps XLA's slowest CPU matrix product of the lesson fast, computing the same sums.

    JAX computes the output layer's kernel gradient as d_probabilities^T @ hidden, a 10x512 product over the
    batch, and then transposes it to the kernel's 512x10. XLA folds that transpose into the product and runs its
    512x10 kernel, which takes 0.2 ms on a CPU, a fifth of a whole training step; the 10x512 product takes 0.03 ms.
    This puts an optimization barrier after each such product (the first axis of both operands contracted, far
    fewer rows than columns), so XLA keeps it as JAX wrote it.
    """
    import jax

    if equation.primitive is not jax.lax.dot_general_p:
        return None
    left, right = inputs
    (contracting, batch) = equation.params["dimension_numbers"]
    if (batch != ((), ()) or tuple(map(tuple, contracting)) != ((0,), (0,)) or left.ndim != 2 or right.ndim != 2
            or left.shape[1] * 8 > right.shape[1]):
        return None
    product = equation.primitive.bind(left, right, **equation.primitive.get_bind_params(equation.params))
    return [jax.lax.optimization_barrier(product)]


def scale_pixels(pixels):
    """uint8 pixels to the tutorial's float32 values in 0..1, bit for bit, inside compiled JAX code."""
    from jax import numpy as jnp

    # Every uint8 value is an index of the 256-value table: no bounds to check.
    return jnp.asarray(PIXEL_VALUES).at[pixels.astype("int32")].get(mode="promise_in_bounds")


def _zero_totals():
    """The epoch's running sums at its start: loss times digits, correct digits, digits seen."""
    return (np.float32(0), np.float32(0), np.float32(0))


def _epoch_logs(totals):
    loss_total, correct, seen = (float(value) for value in totals)
    return {"accuracy": correct / seen, "loss": loss_total / seen} if seen else {}


def _validation_logs(model, validation, batch_size):
    images, labels = validation
    loss, accuracy, _ = score(model, images, labels, batch_size=batch_size)
    return {"val_accuracy": accuracy, "val_loss": loss}


def score(model, images, labels, batch_size=1024):
    """`model.evaluate`'s loss and accuracy and `model.predict`'s probabilities, from one compiled program.

    The same sums as Keras's: each digit's categorical cross-entropy averaged over all digits, the share of
    digits whose most probable class is the label, and the softmax outputs. Keras would compile one program to
    evaluate and another to predict, each on the float32 copy of the images; this compiles one, for batches of
    `batch_size` uint8 digits (the last one padded, its padding weighing 0), and reuses it for any number of digits.
    """
    import jax
    from jax import numpy as jnp
    from keras import ops

    if len(images) == 0:
        raise ValueError("no digits to score: images is empty")
    pixels = np.asarray(images).reshape(len(images), -1)
    labels = np.asarray(labels).astype(np.int32)
    num_classes = model.outputs[0].shape[-1]

    def score_batch(trainable, non_trainable, batch_pixels, batch_labels, batch_weights):
        probabilities, _ = model.stateless_call(trainable, non_trainable, scale_pixels(batch_pixels))
        per_digit = ops.categorical_crossentropy(ops.one_hot(batch_labels, num_classes), probabilities)
        hits = ops.cast(ops.argmax(probabilities, axis=-1) == batch_labels, "float32")
        return probabilities, jnp.sum(per_digit * batch_weights), jnp.sum(hits * batch_weights)

    program = jax.jit(score_batch)
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    # The sums and the slicing off of the padding are done by NumPy: on JAX arrays each would be one more small
    # program to trace and compile.
    outputs, losses, hits = [], [], []
    for first in range(0, len(pixels), batch_size):
        batch_pixels, batch_labels = pixels[first:first + batch_size], labels[first:first + batch_size]
        count = len(batch_pixels)
        batch_weights = np.zeros(batch_size, dtype=np.float32)
        batch_weights[:count] = 1.0
        if count < batch_size:
            batch_pixels = np.concatenate([batch_pixels, np.zeros((batch_size - count, pixels.shape[1]), np.uint8)])
            batch_labels = np.concatenate([batch_labels, np.zeros(batch_size - count, np.int32)])
        probabilities, batch_loss, batch_hits = program(trainable, non_trainable, batch_pixels, batch_labels,
                                                        batch_weights)
        outputs.append((probabilities, count))
        losses.append(batch_loss)
        hits.append(batch_hits)
    probabilities = np.concatenate([np.asarray(output)[:kept] for output, kept in outputs])
    loss_total = correct = np.float32(0)
    for batch_loss, batch_hits in zip(losses, hits):  # Running float32 sums, batch after batch.
        loss_total, correct = loss_total + np.float32(batch_loss), correct + np.float32(batch_hits)
    return float(loss_total) / len(pixels), float(correct) / len(pixels), probabilities


def _read_state(model):
    """The model's and its optimizer's variables as JAX arrays, in the order `stateless_call`/`_apply` expect."""
    return (
        [variable.value for variable in model.trainable_variables],
        [variable.value for variable in model.non_trainable_variables],
        [variable.value for variable in model.optimizer.variables],
    )


def _write_back(model, state):
    """Put the trained values into the Keras model and its optimizer, as fit does when it ends."""
    trainable, non_trainable, optimizer_variables = state
    for variables, values in ((model.trainable_variables, trainable), (model.non_trainable_variables, non_trainable),
                              (model.optimizer.variables, optimizer_variables)):
        for variable, value in zip(variables, values):
            variable.assign(value)


class _Progress:
    """fit's progress display: "Epoch k/n" then Keras's own progress bar with the running loss and accuracy."""

    def __init__(self, verbose, epochs, steps):
        self.verbose, self.epochs, self.steps = verbose, epochs, steps
        self.bar = None

    def start(self, epoch):
        if not self.verbose:
            return
        import keras

        if self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        self.bar = keras.utils.Progbar(target=self.steps, verbose=self.verbose, unit_name="step", stateless_metrics=set())

    def update(self, step, logs):
        if self.bar is not None:
            self.bar.update(step, list(logs.items()), finalize=False)

    def finish(self, logs):
        if self.bar is not None:
            self.bar.update(self.steps, list(logs.items()), finalize=True)
