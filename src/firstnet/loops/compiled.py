"""The fast loop: model.fit's work for the lesson's network as compiled JAX programs, the same numbers, faster.

Only Keras's and JAX's public APIs are used on the way: `model.stateless_call`, `optimizer.stateless_apply`,
`jax.jit` and `jax.lax.fori_loop`. The speed-ups that lean on JAX's internals (skipping blank pixels, convolutions
as products, keeping one product fast on a CPU) are reached through one seam, loops/speedups/, and sit behind one
guard: if building them fails in any way, the loop says so and runs without them, computing the same numbers.
"""

import time

import numpy as np

from firstnet import distribute, loops
from firstnet.errors import first_line
from firstnet.loops import events, speedups

# The tutorial's `astype("float32") / 255` of each of the 256 pixel values, computed by NumPy. Compiled code looks
# pixels up here: XLA turns a division by 255 into a multiplication, one unit in the last place off for half of them.
PIXEL_VALUES = np.arange(256, dtype=np.float32) / 255



class Unavailable(Exception):
    """The compiled loop cannot train this model here; nothing was trained yet, so model.fit can take over."""


def unsupported(model):
    """Why the compiled loop cannot compute exactly what `compile_model` asked for, or None when it can."""
    import keras

    if keras.backend.backend() != "jax":
        return f"the compiled loop runs on JAX only (this is Keras on {keras.backend.backend()})"
    compiled_with = model.get_compile_config()
    if (compiled_with.get("loss") != "categorical_crossentropy"
            or list(compiled_with.get("metrics") or []) != ["accuracy"]):
        return "the compiled loop computes categorical cross-entropy and accuracy only"
    return None


def fit(model, data, config, seed, emit, report_every=events.REPORT_EVERY, shuffle=True, resume=None, devices=None):
    """`model.fit` as one compiled JAX program per group of `report_every` batches, with the uint8 digits on the device.

    What is computed is fit's own work: the model's output (`model.stateless_call`), its loss (categorical
    cross-entropy of the softmax output), its optimizer (`optimizer.stateless_apply`), shuffled batches of
    `batch_size` with the last one smaller, the epoch's running mean loss and accuracy, and the validation scores
    after each epoch. What changes is where the work happens: Python hands the device `report_every` batches at a
    time instead of one, and the pixels stay uint8 until the compiled step turns them into the tutorial's float32
    values. Shuffling uses NumPy's generator from `seed`, so the batches differ from model.fit's own (the
    numbers are the same kind, not the same digits in the same order).

    Raises `Unavailable` if no program can be compiled; then nothing has been trained yet. Ctrl-C stops it between
    two groups of batches, with the weights trained so far written back into the model.

    "checkpoint" events (at the start, at each epoch's end, at Ctrl-C) carry what an exact resume needs: the
    variables, the epoch and the steps done in it, the epoch's running totals, the shuffling generator's state at
    the epoch's start and the widths compiled so far. `resume` (a checkpoints.Checkpoint) goes on from one: the
    same order of digits is drawn again, the same programs are chosen, and the same steps run in the same groups,
    so the run ends with the same bits as one never interrupted.
    With several `devices` (distribute.py), each batch is split across them: padded to a whole share per device
    with digits that weigh nothing, so the loss is still the mean over the batch's own digits.
    Returns facts about the loop: compile_seconds, first_layer_columns, speedups and fallbacks.
    """
    import jax

    (train_images, train_labels), validation = loops.split_validation(data.x_train, data.y_train,
                                                                      config.validation_split)
    train_count = len(train_images)
    steps = -(-train_count // config.batch_size)
    pixels = np.ascontiguousarray(train_images.reshape(train_count, -1))
    mesh = distribute.mesh(devices)
    # Places in a batch: the batch size, or with several devices the batch size rounded up to a share per device.
    slots = devices.padded(config.batch_size) if mesh is not None else config.batch_size
    # Every device keeps all the digits (uint8, small) and gathers its own share of each batch from them.
    everywhere = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if mesh is not None else None
    try:
        images = jax.device_put(pixels, everywhere)
        labels = jax.device_put(train_labels.astype(np.int32), everywhere)
        model.optimizer.build(model.trainable_variables)
        if resume is not None:
            resume.restore(model)
        state = _read_state(model)
    except Exception as error:
        raise Unavailable(f"JAX could not take the digits ({first_line(error)})") from error
    masks = speedups.digit_masks(pixels)
    shuffling = np.random.default_rng(seed)
    programs = _Programs(model, slots, pixels.shape[1], emit, mesh)
    start_epoch, start_step, widths = 1, 0, []
    if resume is not None:
        shuffling.bit_generator.state = resume.shuffling
        start_epoch, start_step = resume.epoch, resume.step
        # The widths the run had compiled: the same ones are chosen again (speedups/blanks.py), so the same programs run.
        programs.known.update(resume.meta["extra"]["widths"])
        widths = list(resume.meta["extra"]["widths"][:start_epoch - 1])

    def plan_epoch():
        """The epoch's shuffled digits, the program for it, and each batch's columns of pixels not blank in all its digits."""
        order, weights = _epoch_order(shuffling if shuffle else None, train_count, steps, config.batch_size, slots)
        used = speedups.batch_pixels_used(masks, order, slots, pixels.shape[1])

        def arguments_for(width):
            return (state, _zero_totals(), images, labels, order, weights, *speedups.batch_columns(used, width), 0, 1)

        program, width = programs.get(programs.width_for(speedups.width_for(used)), arguments_for)
        return program, width, arguments_for(width)[4:8]

    def checkpoint(at):
        """The "checkpoint" event for `at`: (epoch, steps done in it, state, totals, shuffling at its start)."""
        epoch, done, values, sums, shuffled = at
        emit("checkpoint", epoch=epoch, step=done, steps=steps, state=lambda: {
            "loop": "compiled", "totals": [np.float32(total) for total in sums], "shuffling": shuffled,
            "extra": {"widths": sorted({*programs.compiled, *programs.known})},
            "variables": dict(zip(("trainable", "non_trainable", "optimizer"),
                                  ([np.asarray(value) for value in group] for group in values)))})

    # Where training stands, as one tuple assigned in one statement, so that Ctrl-C anywhere finds it whole.
    at = (start_epoch, start_step, state, resume.totals if resume else _zero_totals(), shuffling.bit_generator.state)
    run_steps, width, plan = plan_epoch()
    trained = False
    try:
        if resume is None:
            checkpoint(at)
        for epoch in range(start_epoch, config.epochs + 1):
            if epoch > start_epoch:
                started_at = shuffling.bit_generator.state
                run_steps, width, plan = plan_epoch()
                at = (epoch, 0, state, _zero_totals(), started_at)
            widths.append(width)
            emit("epoch_begin", epoch=epoch, epochs=config.epochs, steps=steps)
            totals = at[3]
            for first in range(at[1], steps, report_every):
                count = min(report_every, steps - first)
                state, totals = run_steps(state, totals, images, labels, *plan, first, count)
                at = (epoch, first + count, state, totals, at[4])
                trained = True
                emit("step", epoch=epoch, epochs=config.epochs, step=first + count, steps=steps,
                     logs=_epoch_logs(totals), weights=lambda values=state[0]: [np.asarray(v) for v in values])
            logs = _epoch_logs(totals)
            if validation is not None:
                _write_back(model, state)
                logs.update(_validation_logs(model, validation, config.batch_size))
                # Keras's evaluate may donate the variables' buffers to its own program: read them back.
                state = _read_state(model)
                at = (*at[:2], state, *at[3:])
            emit("epoch_end", epoch=epoch, epochs=config.epochs, step=steps, steps=steps, logs=logs)
            checkpoint((epoch + 1, 0, state, _zero_totals(), shuffling.bit_generator.state))
    except KeyboardInterrupt:
        # Ctrl-C: keep the step reached, so that `firstnet train --resume` goes on from exactly here.
        checkpoint(at)
        trained = True
        state = at[2]
        raise
    except Unavailable as error:
        if trained:
            raise RuntimeError(f"the compiled loop failed after training began: {error}") from error
        raise
    finally:
        if trained:
            _write_back(model, state)
    return {"compile_seconds": programs.compile_seconds,
            "first_layer_columns": float(np.mean(widths)) if widths else None,
            "speedups": programs.speedups(), "fallbacks": programs.fallbacks}


class _Programs:
    """The compiled training programs of a run, one per width, with the speed-ups or, if they fail, without them."""

    def __init__(self, model, batch_size, pixels, emit, mesh=None):
        self.model, self.batch_size, self.pixels, self.emit, self.mesh = model, batch_size, pixels, emit, mesh
        # Blank pixels are skipped in a first Dense layer on flat pixels only; a convnet takes all of them.
        # Nor when augmentation layers come first: the first product then takes redrawn digits, not the pixels.
        # Imported here: augment.py imports Keras, which this module must not do before Keras chooses its backend
        # (the start-up imports Keras in the background while it reads MNIST; startup.py).
        from firstnet import augment

        self.flat = len(model.inputs[0].shape) == 2 and not augment.is_augmented(model)
        self.with_speedups = True
        self.fallbacks = []
        self.compiled = {}
        # Widths a resumed run had compiled before: chosen as if compiled, compiled when first used.
        self.known = set()
        self.compile_seconds = 0.0

    def speedups(self):
        if not self.with_speedups:
            return []
        import jax

        return speedups.names(self.model, any(width < self.pixels for width in self.compiled),
                              jax.default_backend() == "cpu")

    def width_for(self, needed):
        """The narrowest width compiled so far that holds `needed` columns (all pixels without the speed-ups)."""
        if not self.with_speedups or not self.flat:
            return self.pixels
        return min((known for known in {*self.compiled, *self.known} if known >= needed), default=needed)

    def get(self, width, arguments_for):
        """The program for `width` and the width it really takes, compiling it on first use.

        `arguments_for(width)` gives example arguments of the program's shapes for that width.
        """
        if not self.with_speedups:
            width = self.pixels
        if width in self.compiled:
            return self.compiled[width], width
        started = time.perf_counter()
        try:
            program = _compile(_training_program(self.model, self.batch_size, self.pixels, width,
                                                 with_speedups=self.with_speedups, mesh=self.mesh), arguments_for(width))
        except Exception as error:  # Any failure: an internal moved, a rule that no longer fits, a lowering error.
            reason = f"{type(error).__name__}: {first_line(error)}"
            if not self.with_speedups:
                raise Unavailable(reason) from error
            self.with_speedups = False
            self.fallbacks.append(f"speed-ups off ({reason})")
            self.emit("note", text=f"firstnet: the compiled loop's speed-ups could not be built here ({reason}); "
                                   "training without them, to the same numbers")
            return self.get(self.pixels, arguments_for)
        self.compile_seconds += time.perf_counter() - started
        self.compiled[width] = program
        return program, width


def _compile(program, arguments):
    """Lower and compile now, so that any failure shows before the first step changes a weight."""
    return program.lower(*arguments).compile()


def _epoch_order(shuffling, count, steps, batch_size, slots=None):
    """A new shuffle of the digits (none without `shuffling`), as `steps` batches of `slots` places (default
    `batch_size`): each batch's digits first, then places that weigh 0 (the last batch is smaller)."""
    slots = slots or batch_size
    places = np.arange(steps * batch_size).reshape(steps, batch_size)
    order = np.zeros((steps, slots), dtype=np.int32)
    weights = np.zeros((steps, slots), dtype=np.float32)
    order[:, :batch_size][places < count] = shuffling.permutation(count) if shuffling is not None else np.arange(count)
    weights[:, :batch_size][places < count] = 1.0
    return order.reshape(-1), weights.reshape(-1)


def _training_program(model, batch_size, pixels, width, with_speedups=True, mesh=None):
    """A jitted function that runs `count` training steps from step `first` of an epoch, on the device.

    Its `images` are the digits as uint8 rows of `pixels` pixels. With a `width` below `pixels`, the first
    layer's products of each step run over the batch's `width` columns only (see speedups/blanks.py), given per batch as
    `columns` and `positions`; otherwise those two are not used. With a `mesh` of several devices, each step's
    batch is split across them along the batch axis; XLA sums their gradients.
    """
    import jax
    from jax import numpy as jnp
    from keras import ops

    def split(values):
        """The batch `values`, each device taking its share of the rows (as they are with one device)."""
        if mesh is None:
            return values
        return jax.lax.with_sharding_constraint(values, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))

    optimizer = model.optimizer
    num_classes = model.outputs[0].shape[-1]
    input_shape = tuple(model.inputs[0].shape[1:])
    skip_blanks = with_speedups and width < pixels

    loss_function = _loss_function(model)
    if with_speedups:
        # Before differentiation, so that JAX differentiates products, not XLA's slow CPU convolutions.
        loss_function = speedups.faster_loss(model, loss_function)
    gradient = jax.value_and_grad(loss_function, has_aux=True)
    if with_speedups:
        # The traced step is run again once, with rules deciding how some of its products are computed; they lean
        # on JAX's internals, so any failure is caught where the program is built (`_Programs.get`).
        gradient = speedups.faster_gradient(gradient, skip_blanks, jax.default_backend() == "cpu")

    def run_steps(state, totals, images, labels, order, weights, columns, positions, first, count):
        def one_step(step, carry):
            (trainable, non_trainable, optimizer_variables), (loss_total, correct, seen) = carry
            rows = split(jax.lax.dynamic_slice_in_dim(order, step * batch_size, batch_size))
            batch_weights = split(jax.lax.dynamic_slice_in_dim(weights, step * batch_size, batch_size))
            # The tutorial's preparation, done here on the device: pixels as float32 in 0..1, labels one-hot.
            # With blanks skipped, nothing uses the full batch_images and XLA leaves them out of the program.
            batch_images = scale_pixels(jnp.take(images, rows, axis=0)).reshape((-1, *input_shape))
            batch_labels = jnp.take(labels, rows, axis=0)
            targets = ops.one_hot(batch_labels, num_classes)
            arguments = (trainable, non_trainable, batch_images, targets, batch_weights)
            if skip_blanks:
                batch_columns = columns[step]
                selected = scale_pixels(speedups.selected_pixels(images, rows, batch_columns))
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
    input_shape = tuple(model.inputs[0].shape[1:])
    def compiled_with(forward):
        def score_batch(trainable, non_trainable, batch_pixels, batch_labels, batch_weights):
            batch_images = scale_pixels(batch_pixels).reshape((-1, *input_shape))
            probabilities, _ = forward(trainable, non_trainable, batch_images)
            per_digit = ops.categorical_crossentropy(ops.one_hot(batch_labels, num_classes), probabilities)
            hits = ops.cast(ops.argmax(probabilities, axis=-1) == batch_labels, "float32")
            return probabilities, jnp.sum(per_digit * batch_weights), jnp.sum(hits * batch_weights)

        return jax.jit(score_batch)

    # The convnet's forward pass as products too: XLA's CPU convolutions would take most of the scoring time. The
    # rewrite leans on JAX's internals (speedups/): if it cannot be traced, the plain forward pass scores instead.
    program = compiled_with(model.stateless_call)
    try:
        forward = speedups.faster_forward(model, model.stateless_call)
        if forward is not None:
            faster = compiled_with(forward)
            faster(*_example_batch(model, batch_size, pixels.shape[1]))  # Traced and compiled once, then reused.
            program = faster
    except Exception:
        pass
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


def _example_batch(model, batch_size, pixel_count):
    """Arguments of score's program's shapes, to trace and compile it before the first real batch."""
    return ([variable.value for variable in model.trainable_variables],
            [variable.value for variable in model.non_trainable_variables],
            np.zeros((batch_size, pixel_count), np.uint8), np.zeros(batch_size, np.int32),
            np.zeros(batch_size, np.float32))


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
