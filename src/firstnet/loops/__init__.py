"""How a fit runs: one meaning (the tutorial's `model.fit`), two loops, one stream of events.

`keras_fit.py` is Keras's own `model.fit`, on any backend. `compiled.py` computes the same thing as compiled JAX
programs, faster; it is the default where it is supported, and whenever it cannot run, `model.fit` takes over and
the run says so. Both send the same events (events.py), handle Ctrl-C the same way, and hold out the same
validation digits (`split_validation`).
"""

import dataclasses
import math
import time

from firstnet.choices import LOOPS
from firstnet.errors import UserError
from firstnet.loops import compiled, events
# How metrics.json describes each loop (the NumPy twin, firstnet scratch, records its own).
DESCRIPTIONS = {"compiled": "compiled epochs (model.stateless_call)", "fit": "model.fit",
                "scratch": "NumPy, one batch at a time (firstnet.scratch)"}


@dataclasses.dataclass
class Fitted:
    """What a fit leaves besides the trained model: its history, whether Ctrl-C ended it, and how it ran."""

    history: dict
    interrupted: bool
    loop: str
    facts: dict


def fit(model, data, config, seed, watchers=(), report_every=events.REPORT_EVERY, resume=None, devices=None):
    """Train `model` on `data` as `config` says (epochs, batch size, validation split, and `config.loop`).

    `config.loop` is "compiled", "fit", or None for the compiled loop where it is supported. `watchers` receive
    every event (see events.py). Ctrl-C stops training early: the model keeps the weights trained so far and
    `interrupted` is True, so the lesson still evaluates and saves it. `resume`, a checkpoints.Checkpoint, goes
    on from where it stands; each loop also sends "checkpoint" events for checkpoints.Writer to keep. `devices`
    (distribute.py) splits every batch across several devices; the training is the same.
    """
    history = events.History(resume.history if resume else None)
    emit = events.Broadcast([history, *watchers])
    loop, fallbacks = choose_loop(model, config.loop)
    if resume is not None and resume.meta["loop"] != loop:
        raise UserError(f"--resume {resume.run_dir}: cannot resume: it was trained by the {resume.meta['loop']} loop "
                        f"and only the {loop} loop can run here")
    for reason in fallbacks:
        emit("note", text=f"firstnet: {reason}; training with Keras's model.fit instead")
    steps = -(-training_count(len(data.x_train), config.validation_split) // config.batch_size)
    emit("begin", epochs=config.epochs, steps=steps, facts={"loop": loop})
    if resume is not None:
        emit("note", text=f"Resuming {resume.run_dir} at epoch {resume.epoch} of {config.epochs}, step {resume.step} "
                          f"of {steps}")
    started = time.perf_counter()
    interrupted = False
    facts = {}
    try:
        if loop == "compiled":
            try:
                facts = compiled.fit(model, data, config, seed, emit, report_every, resume=resume, devices=devices)
            except compiled.Unavailable as error:
                loop, reason = "fit", f"the compiled loop could not run ({error})"
                fallbacks.append(reason)
                emit("note", text=f"firstnet: {reason}; training with Keras's model.fit instead")
        if loop == "fit":
            # Here, not at the top: keras_fit imports Keras, and the command line imports this package before
            # Keras loads, to hide Keras's optional packages first (loops/speedups/lean_import.py).
            from firstnet.loops import keras_fit

            facts = keras_fit.fit(model, data, config, seed, emit, report_every, resume=resume, devices=devices)
    except KeyboardInterrupt:
        # A learner who stops training early still gets the model trained so far, evaluated and saved.
        interrupted = True
        emit("note", text="Interrupted: evaluating and saving the model as trained so far (Ctrl-C again to abandon it).")
    facts = {"compile_seconds": None, "first_layer_columns": None, "speedups": [], **facts,
             "fit_seconds": time.perf_counter() - started}
    facts["fallbacks"] = fallbacks + facts.get("fallbacks", [])
    if resume is not None:
        facts["resumed_from"] = {"epoch": resume.epoch, "step": resume.step}
    facts.update(devices.describe() if devices is not None else {"devices": None, "distribution": None})
    emit("end", epochs=config.epochs, epoch=len(history.history["loss"]), facts={"loop": loop, "interrupted": interrupted})
    return Fitted(history=history.history, interrupted=interrupted, loop=loop, facts=facts)


def choose_loop(model, asked=None):
    """The loop that will run, and why it is not the one asked for (a list of reasons, empty when it is)."""
    if asked not in (None, *LOOPS):
        raise UserError(f"--loop {asked}: unknown; choose one of {', '.join(LOOPS)}")
    if asked == "fit":
        return "fit", []
    reason = compiled.unsupported(model)
    if reason is None:
        return "compiled", []
    # The default quietly takes model.fit where the compiled loop does not apply; a learner who asked is told.
    return "fit", [reason] if asked == "compiled" else []


def training_count(count, validation_split):
    """How many of `count` digits are trained on after Keras's validation_split: the first count * (1 - split)."""
    return math.floor(count * (1.0 - validation_split)) if validation_split else count


def split_validation(images, labels, validation_split):
    """Keras's rule for validation_split: the last fraction of the training digits, before any shuffling, is held out.

    Returns ((train_images, train_labels), validation) with validation (images, labels), or None for no split.
    """
    if not validation_split:
        return (images, labels), None
    split_at = training_count(len(images), validation_split)
    if split_at in (0, len(images)):
        raise UserError(f"--validation-split {validation_split}: leaves {split_at} of {len(images)} digits for "
                        f"training and {len(images) - split_at} for validation; use a fraction like 0.1")
    return (images[:split_at], labels[:split_at]), (images[split_at:], labels[split_at:])
