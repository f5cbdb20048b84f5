"""Two loops, one meaning: the compiled loop computes what Keras's model.fit computes, both tell the same events,
and every speed trick that leans on JAX's internals falls back to the public path when it fails."""

import dataclasses
import math
import sys

import jax
import keras
import numpy as np
import pytest

from conftest import needs_full_mnist
from firstnet import data as mnist_data, evaluate, loops, model as firstnet_model, train
from firstnet.errors import UserError
from firstnet.loops import compiled, events
from firstnet.loops.speedups import blanks, retrace


def small_mnist(mnist, train_count, test_count=500):
    return dataclasses.replace(mnist, x_train=mnist.x_train[:train_count], y_train=mnist.y_train[:train_count],
                               x_test=mnist.x_test[:test_count], y_test=mnist.y_test[:test_count])


def seeded_model(seed, hidden_units=64, **schedule):
    keras.utils.set_random_seed(seed)
    model = firstnet_model.build_model(hidden_units=hidden_units)
    return firstnet_model.compile_model(model, **schedule)


class Recorder:
    """A watcher that keeps every event."""

    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def kinds(self):
        return [event.kind for event in self.events]


def run_compiled(model, data, config, seed, **options):
    history = events.History()
    facts = compiled.fit(model, data, config, seed, events.Broadcast([history]), **options)
    return history.history, facts


# The tutorial's constant learning rate, and `train --fast`'s cosine decay over the 16 updates of this test.
SCHEDULES = [{}, {"learning_rate": 0.004, "schedule": "cosine", "decay_steps": 16}]


@pytest.mark.slow
@pytest.mark.backend("jax")
@pytest.mark.parametrize("schedule", SCHEDULES, ids=["constant", "cosine"])
def test_compiled_loop_matches_model_fit_step_for_step(mnist, schedule):
    # 1000 digits in batches of 128: seven full batches and a last one of 104, as model.fit cuts them.
    data = small_mnist(mnist, 1000)
    config = train.TrainConfig(epochs=2, batch_size=128, hidden_units=64, verbose=0)

    reference = seeded_model(7, **schedule)
    fitted = reference.fit(mnist_data.prepare_images(data.x_train), mnist_data.one_hot(data.y_train), epochs=2,
                           batch_size=128, shuffle=False, verbose=0)
    ours = seeded_model(7, **schedule)
    assert compiled.unsupported(ours) is None
    history, facts = run_compiled(ours, data, config, 0, shuffle=False)

    assert facts["fallbacks"] == [] and "kept product" in facts["speedups"]
    for expected, found in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(found, expected, rtol=2e-4, atol=2e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history[key], fitted.history[key], rtol=1e-4)
    # The optimizer state is written back too: the same number of steps, the same RMSprop velocities.
    assert int(ours.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 16
    for expected, found in zip(reference.optimizer.variables, ours.optimizer.variables):
        np.testing.assert_allclose(np.asarray(found.numpy()), np.asarray(expected.numpy()), rtol=1e-3, atol=1e-9)


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_skipping_blank_pixels_trains_the_same_network(mnist, monkeypatch):
    # The same three shuffled epochs three ways: blank pixels skipped at the usual widths, at each epoch's exact
    # width (so a later epoch may need a wider program than the first), and not skipped (full products).
    data = small_mnist(mnist, 1000)
    config = train.TrainConfig(epochs=3, batch_size=128, hidden_units=64, verbose=0)
    widths = []
    build_program = compiled._training_program

    def recorded(model, batch_size, pixels, width, with_speedups=True, **options):
        widths.append(width)
        return build_program(model, batch_size, pixels, width, with_speedups, **options)

    monkeypatch.setattr(compiled, "_training_program", recorded)
    results = {}
    for name, width_step in (("usual", 32), ("exact", 1), ("full", 784)):
        monkeypatch.setattr(blanks, "WIDTH_STEP", width_step)
        widths.clear()
        model = seeded_model(7)
        history, _ = run_compiled(model, data, config, 4)
        results[name] = model.get_weights(), history, list(widths)

    assert results["full"][2] == [784]
    assert results["usual"][2] and all(width < 784 and width % 32 == 0 for width in results["usual"][2])
    exact_widths = results["exact"][2]
    assert len(exact_widths) >= 2 and exact_widths == sorted(exact_widths) and exact_widths[-1] < 784
    full_weights, full_history, _ = results["full"]
    for name in ("usual", "exact"):
        weights, history, _ = results[name]
        for expected, found in zip(full_weights, weights):
            np.testing.assert_allclose(found, expected, rtol=2e-4, atol=2e-6)
        for key in ("loss", "accuracy"):
            np.testing.assert_allclose(history[key], full_history[key], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_pixels_scaled_on_the_device_equal_the_tutorials_float32_division(mnist):
    images = np.concatenate([mnist.x_train, mnist.x_test]).reshape(70000, -1)
    on_device = jax.jit(compiled.scale_pixels)(images)
    # Bit for bit: the compiled step sees exactly the tutorial's `astype('float32') / 255`.
    assert np.array_equal(np.asarray(on_device), mnist_data.prepare_images(images))


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_same_seed_same_numbers_whatever_the_reporting_rate(mnist, tmp_path):
    # Steps reported every 4 batches (19 a epoch: calls of 4) or every 50 (one call an epoch): the same program.
    data = small_mnist(mnist, 3000)
    config = train.TrainConfig(epochs=2, hidden_units=32, validation_split=0.2, verbose=0)
    results = []
    for report_every in (4, 50):
        model = seeded_model(5, hidden_units=32)
        recorder = Recorder()
        fitted = loops.fit(model, data, config, 5, watchers=[recorder], report_every=report_every)
        results.append((fitted, model.get_weights(), recorder))
    (first, first_weights, few), (second, second_weights, many) = results
    assert first.loop == second.loop == "compiled" and first.history == second.history
    assert all(np.array_equal(a, b) for a, b in zip(first_weights, second_weights))
    # Keras's validation_split: the last 20% before shuffling, scored after every epoch.
    assert set(first.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in first.history.values())
    steps = math.ceil(2400 / 128)
    assert [event.step for event in few.events if event.kind == "step" and event.epoch == 1] == [4, 8, 12, 16, 19]
    assert [event.step for event in many.events if event.kind == "step" and event.epoch == 1] == [steps]


@pytest.mark.slow
@pytest.mark.parametrize("loop", [pytest.param("compiled", marks=pytest.mark.backend("jax")), "fit"])
def test_both_loops_tell_the_same_events(mnist, loop):
    data = small_mnist(mnist, 1100)
    config = train.TrainConfig(epochs=2, batch_size=100, hidden_units=16, validation_split=0.1, loop=loop, verbose=0)
    recorder = Recorder()
    fitted = loops.fit(seeded_model(2, hidden_units=16), data, config, 2, watchers=[recorder], report_every=3)
    assert fitted.loop == loop and not fitted.interrupted and fitted.facts["fallbacks"] == []
    steps = math.ceil(990 / 100)
    # Steps 3, 6, 9 and the last, 10; a checkpoint before training and after each epoch (checkpoints.py).
    epoch = ["epoch_begin"] + ["step"] * 4 + ["epoch_end", "checkpoint"]
    assert recorder.kinds() == ["begin", "checkpoint", *epoch, *epoch, "end"]
    for event in recorder.events:
        if event.kind == "step":
            assert event.steps == steps and set(event.logs) == {"accuracy", "loss"}
            assert all(math.isfinite(value) for value in event.logs.values())
            weights = event.weights()
            assert [w.shape for w in weights] == [(784, 16), (16,), (16, 10), (10,)]
        if event.kind == "epoch_end":
            assert set(event.logs) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert [event.step for event in recorder.events if event.kind == "step"][:4] == [3, 6, 9, 10]
    # The history is the epoch-end events, whichever loop ran.
    assert fitted.history["val_loss"] == [event.logs["val_loss"] for event in recorder.events if event.kind == "epoch_end"]
    assert recorder.events[0].facts == {"loop": loop}


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_both_loops_reach_the_same_accuracy(mnist):
    # The same lesson by both loops from the same seeds: the same initial weights, other shuffles, the same kind of
    # result. (The full-MNIST medians over seeds are in benchmarks/RESULTS.md; this is a quick check of the same.)
    data = small_mnist(mnist, 10000, test_count=2000)
    accuracy = {}
    for loop in loops.LOOPS:
        scores = []
        for seed in (1, 2, 3):
            model = seeded_model(seed, hidden_units=128)
            loops.fit(model, data, train.TrainConfig(epochs=2, hidden_units=128, loop=loop, verbose=0), seed)
            scores.append(evaluate.evaluate_model(model, data.x_test, data.y_test)["test_accuracy"])
        accuracy[loop] = float(np.median(scores))
    # 158 weight updates on 10,000 digits reach about 0.87 on the test digits either way.
    assert accuracy["compiled"] > 0.85 and accuracy["fit"] > 0.85
    assert abs(accuracy["compiled"] - accuracy["fit"]) < 0.015


def compiled_run(mnist, tmp_path, name="run"):
    data = small_mnist(mnist, 2000)
    return train.train(train.TrainConfig(epochs=2, hidden_units=32, seed=3, verbose=0, run_dir=str(tmp_path / name)),
                       data=data)


def jax_extend_moved(monkeypatch):
    # As if a JAX release moved jax.extend: importing it fails.
    monkeypatch.setitem(sys.modules, "jax.extend", None)
    monkeypatch.setitem(sys.modules, "jax.extend.core", None)


def make_jaxpr_raises(monkeypatch):
    def moved(*arguments, **options):
        raise TypeError("make_jaxpr() got an unexpected keyword argument 'return_shape'")

    monkeypatch.setattr(jax, "make_jaxpr", moved)


def bind_signature_changed(monkeypatch):
    # The oldest JAX releases fail here: `Primitive.bind() argument after ** must be a mapping, not tuple`.
    def changed(*arguments, **options):
        raise TypeError("jax._src.core.Primitive.bind() argument after ** must be a mapping, not tuple")

    monkeypatch.setattr(retrace, "_evaluate", changed)


@pytest.mark.slow
@pytest.mark.backend("jax")
@pytest.mark.parametrize("moved", [jax_extend_moved, make_jaxpr_raises, bind_signature_changed],
                         ids=["jax.extend", "make_jaxpr", "bind"])
def test_moved_jax_internals_fall_back_to_the_public_compiled_loop(mnist, tmp_path, monkeypatch, moved):
    reference = compiled_run(mnist, tmp_path, "reference").metrics
    moved(monkeypatch)
    notes = Recorder()
    result = train.train(train.TrainConfig(epochs=2, hidden_units=32, seed=3, verbose=0,
                                           run_dir=str(tmp_path / "moved")), data=small_mnist(mnist, 2000),
                         watchers=[notes])
    metrics = result.metrics
    assert metrics["loop"] == "compiled" and metrics["speedups"] == []
    assert len(metrics["fallbacks"]) == 1 and metrics["fallbacks"][0].startswith("speed-ups off (")
    said = [event.text for event in notes.events if event.kind == "note"]
    assert len(said) == 1 and "training without them, to the same numbers" in said[0]
    # The same training, without the tricks: only the grouping of the sums differs.
    assert metrics["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=0.002)
    assert metrics["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-3)


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_a_compiled_loop_that_cannot_compile_falls_back_to_model_fit(mnist, tmp_path, monkeypatch):
    asked_for_fit = train.train(train.TrainConfig(epochs=2, hidden_units=32, seed=3, verbose=0, loop="fit",
                                                  run_dir=str(tmp_path / "fit")), data=small_mnist(mnist, 2000)).metrics

    def broken(*arguments, **options):
        raise RuntimeError("XLA lowering failed")

    monkeypatch.setattr(compiled, "_compile", broken)
    notes = Recorder()
    result = train.train(train.TrainConfig(epochs=2, hidden_units=32, seed=3, verbose=0,
                                           run_dir=str(tmp_path / "run")), data=small_mnist(mnist, 2000),
                         watchers=[notes])
    metrics = result.metrics
    assert metrics["loop"] == "fit" and metrics["training_loop"] == "model.fit"
    assert [reason.split(" (")[0] for reason in metrics["fallbacks"]] == ["the compiled loop could not run"]
    assert any("training with Keras's model.fit instead" in event.text for event in notes.events if event.kind == "note")
    # Nothing was trained before the fallback, so the run is the same seed's model.fit run, number for number.
    assert metrics["epochs_completed"] == 2
    for key in ("test_accuracy", "test_loss", "train_loss"):
        assert metrics[key] == asked_for_fit[key]


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_scoring_falls_back_to_model_evaluate(mnist, monkeypatch):
    model = seeded_model(0, hidden_units=16)
    images, labels = mnist.x_test[:300], mnist.y_test[:300]
    expected = evaluate.evaluate_model(model, images, labels)
    assert expected["scored_by"] == "compiled" and expected["fallback"] is None

    def broken(*arguments, **options):
        raise RuntimeError("cannot compile")

    monkeypatch.setattr(compiled, "score", broken)
    found = evaluate.evaluate_model(model, images, labels)
    assert found["scored_by"] == "model.evaluate" and found["fallback"].startswith("compiled scoring off (RuntimeError")
    assert found["test_accuracy"] == pytest.approx(expected["test_accuracy"], abs=1e-6)
    assert found["test_loss"] == pytest.approx(expected["test_loss"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.backend("jax")
def test_other_backends_and_other_compiles_get_model_fit(monkeypatch):
    model = seeded_model(1, hidden_units=16)
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    assert "JAX only" in compiled.unsupported(model)
    # The default quietly takes model.fit there; a learner who asked for the compiled loop is told why not.
    assert loops.choose_loop(model) == ("fit", [])
    loop, reasons = loops.choose_loop(model, "compiled")
    assert loop == "fit" and "JAX only" in reasons[0]
    monkeypatch.undo()
    other = firstnet_model.build_model(hidden_units=8)
    other.compile(optimizer="rmsprop", loss="mean_squared_error", metrics=["accuracy"])
    assert compiled.unsupported(other) is not None and loops.choose_loop(other) == ("fit", [])
    assert loops.choose_loop(model, "fit") == ("fit", []) and loops.choose_loop(model) == ("compiled", [])


def test_one_validation_split_rule_for_every_loop():
    images, labels = np.arange(10), np.arange(10)
    (train_images, _), (held_out, _) = loops.split_validation(images, labels, 0.25)
    # Keras's own rule: the first floor(10 * 0.75) = 7 train, the last 3 validate, before any shuffling.
    assert list(train_images) == list(range(7)) and list(held_out) == [7, 8, 9]
    assert loops.split_validation(images, labels, 0.0) == ((images, labels), None)
    for fraction in (0.9999, 0.95):  # floor(10 * 0.05) = 0 digits left to train on.
        with pytest.raises(UserError, match="--validation-split"):
            loops.split_validation(images, labels, fraction)


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_trained(mnist, monkeypatch):
    data = small_mnist(mnist, 1000)
    model = seeded_model(4, hidden_units=16)
    before = [np.array(weight) for weight in model.get_weights()]

    def interrupt_in_epoch_two(event):
        if event.kind == "epoch_begin" and event.epoch == 2:
            raise KeyboardInterrupt

    fitted = loops.fit(model, data, train.TrainConfig(epochs=3, hidden_units=16, verbose=0), 4,
                       watchers=[interrupt_in_epoch_two])
    assert fitted.interrupted and len(fitted.history["loss"]) == 1
    # The first epoch's training was written back into the model.
    assert not np.array_equal(model.get_weights()[0], before[0])
    assert int(model.optimizer.iterations.numpy()) == math.ceil(1000 / 128)


def run_cli_with_jax_internals_moved(*args):
    """`firstnet` in a fresh process in which `import jax.extend` fails, as after a JAX release that moved it."""
    import subprocess

    script = ("import sys\n"
              "sys.modules['jax.extend'] = None\n"
              "sys.modules['jax.extend.core'] = None\n"
              "from firstnet import cli\n"
              f"sys.exit(cli.main({list(map(str, args))!r}))\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.backend("jax")
@needs_full_mnist
def test_train_ends_at_the_tutorials_accuracy_with_jax_internals_moved(tmp_path):
    import json

    done = run_cli_with_jax_internals_moved("train", "--seed", "0", "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["loop"] == "compiled" and metrics["speedups"] == [] and metrics["epochs_completed"] == 5
    assert metrics["test_accuracy"] >= 0.975
    # Said once, in one line, and recorded.
    said = [line for line in done.stderr.splitlines() if "speed-ups" in line]
    assert len(said) == 1 and "Traceback" not in done.stderr
    assert metrics["fallbacks"] and metrics["fallbacks"][0].startswith("speed-ups off (")


@pytest.mark.slow
@needs_full_mnist
def test_loop_fit_is_the_tutorials_model_fit_from_the_cli(tmp_path):
    import json

    from conftest import run_firstnet

    done = run_firstnet("train", "--loop", "fit", "--epochs", "1", "--seed", "0", "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["loop"] == "fit" and metrics["training_loop"] == "model.fit" and metrics["loop_asked"] == "fit"
    assert metrics["test_accuracy"] > 0.95 and metrics["fallbacks"] == []
    # The same progress display as the compiled loop: the bar is one more watcher of the same events.
    assert "469/469 steps - accuracy: " in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Training Dense(512, relu)") and ": 1 epoch, batch 128, rmsprop" in lines[0]
    assert "None" not in lines  # Only the lesson's own line describes the run; the loop's begin event prints nothing.
