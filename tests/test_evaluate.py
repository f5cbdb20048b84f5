"""evaluate.py: firstnet's scores are the ones Keras's own model.evaluate and model.predict give."""

import os
import sys

import keras
import numpy as np
import pytest

from firstnet import data as mnist_data, evaluate, model as firstnet_model
from firstnet.loops import compiled as compiled_loop


@pytest.fixture(scope="module")
def partly_trained(mnist):
    """A small network after one short epoch: wrong often enough that the scores say something."""
    keras.utils.set_random_seed(3)
    model = firstnet_model.compile_model(firstnet_model.build_model(hidden_units=64))
    model.fit(mnist_data.prepare_images(mnist.x_train[:2000]), mnist_data.one_hot(mnist.y_train[:2000]),
              batch_size=128, epochs=1, verbose=0)
    return model


def keras_scores(model, images, labels, batch_size):
    inputs = mnist_data.prepare_images(images)
    loss, accuracy = model.evaluate(inputs, mnist_data.one_hot(labels), batch_size=batch_size, verbose=0)
    return loss, accuracy, model.predict(inputs, batch_size=batch_size, verbose=0)


@pytest.mark.backend("jax")
@pytest.mark.parametrize("count, batch_size", [(1500, 1024), (1000, 1000), (77, 32)])
def test_compiled_scores_equal_keras_evaluate_and_predict(mnist, partly_trained, count, batch_size):
    # 1500 in batches of 1024 leaves a padded last batch; 1000 fills its only batch; 77 in 32s pads 19 digits.
    images, labels = mnist.x_test[:count], mnist.y_test[:count]
    loss, accuracy, probabilities = compiled_loop.score(partly_trained, images, labels, batch_size=batch_size)
    expected_loss, expected_accuracy, expected_probabilities = keras_scores(partly_trained, images, labels, batch_size)

    assert probabilities.shape == (count, 10)
    np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-5, atol=1e-7)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-6)
    assert 0.5 < accuracy < 0.99  # A network that gets some digits wrong, so the comparison means something.


def test_evaluate_model_gives_the_same_scores_on_either_path(mnist, partly_trained, monkeypatch):
    images, labels = mnist.x_test[:1200], mnist.y_test[:1200]
    compiled = evaluate.evaluate_model(partly_trained, images, labels)
    # Keras's own calls: what other backends, and images that are not uint8 pixels, get.
    monkeypatch.setattr(compiled_loop, "unsupported", lambda model: "this test scores with Keras")
    with_keras = evaluate.evaluate_model(partly_trained, images, labels)

    assert compiled["test_loss"] == pytest.approx(with_keras["test_loss"], rel=1e-5)
    assert compiled["test_accuracy"] == pytest.approx(with_keras["test_accuracy"], abs=1e-6)
    assert np.array_equal(compiled["confusion"], with_keras["confusion"])
    assert compiled["confusion"].sum() == 1200
    assert np.trace(compiled["confusion"]) == round(compiled["test_accuracy"] * 1200)


def test_float_images_are_scored_by_keras(mnist, partly_trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("float images must not go to the uint8 program")

    monkeypatch.setattr(compiled_loop, "score", refuse)
    scores = evaluate.evaluate_model(partly_trained, mnist_data.prepare_images(mnist.x_test[:300]), mnist.y_test[:300])
    assert scores["confusion"].sum() == 300


def test_verbose_evaluation_prints_keras_style_scores(mnist, partly_trained, capsys):
    scores = evaluate.evaluate_model(partly_trained, mnist.x_test[:2048], mnist.y_test[:2048], verbose=1)
    printed = capsys.readouterr().out
    assert "2/2" in printed
    assert f"accuracy: {scores['test_accuracy']:.4f}" in printed and f"loss: {scores['test_loss']:.4f}" in printed


@pytest.mark.parametrize("scored_by", [pytest.param("compiled", marks=pytest.mark.backend("jax")), "model.evaluate"])
def test_progress_into_a_pipe_is_plain_text(mnist, partly_trained, monkeypatch, scored_by):
    if scored_by == "model.evaluate":
        monkeypatch.setattr(compiled_loop, "unsupported", lambda model: "this test scores with Keras")
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        scores = evaluate.evaluate_model(partly_trained, mnist.x_test[:2048], mnist.y_test[:2048], verbose=1)
        monkeypatch.undo()
    with os.fdopen(read_end) as stream:
        printed = stream.read()
    assert scores["scored_by"] == scored_by
    assert "2/2" in printed and f"accuracy: {scores['test_accuracy']:.4f}" in printed
    assert not {"\r", "\b", "\x1b"} & set(printed), repr(printed)
    assert printed.count("\n") == 1 and printed.endswith("\n")


def test_a_terminal_gets_keras_live_bar(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert evaluate.display_verbosity(1) == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert evaluate.display_verbosity(1) == 2 and evaluate.display_verbosity(0) == 0
