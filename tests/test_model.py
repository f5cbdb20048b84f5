"""firstnet.model: the tutorial's network, and a loader that refuses broken or unsafe model files."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

from firstnet import model as firstnet_model
from firstnet.errors import UserError


def test_the_tutorials_network():
    model = firstnet_model.compile_model(firstnet_model.build_model())
    assert [layer.name for layer in model.layers] == ["hidden", "digits"]
    assert model.input_shape == (None, 784) and model.output_shape == (None, 10)
    assert model.layers[0].activation is keras.activations.relu
    assert model.layers[1].activation is keras.activations.softmax
    assert model.count_params() == 784 * 512 + 512 + 512 * 10 + 10
    assert isinstance(model.optimizer, keras.optimizers.RMSprop) and float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert model.loss == "categorical_crossentropy"
    with pytest.raises(ValueError, match="hidden_units must be at least 1"):
        firstnet_model.build_model(hidden_units=0)
    with pytest.raises(ValueError, match="unknown optimizer 'fast'"):
        firstnet_model.make_optimizer("fast")
    assert float(firstnet_model.make_optimizer("adam", 0.01).learning_rate) == pytest.approx(0.01)


def test_saved_run_reloads_to_the_same_predictions(trained_run, mnist):
    reloaded = firstnet_model.load_model(trained_run.run_dir)  # A run folder or its model.keras.
    inputs = mnist.x_test[:100].reshape(100, 784).astype("float32") / 255
    assert np.array_equal(reloaded.predict(inputs, verbose=0), trained_run.model.predict(inputs, verbose=0))


def lambda_model_file(tmp_path):
    """A .keras file whose config holds a Lambda layer: loading it would run code that came with the file."""
    model = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(lambda pixels: pixels * 2),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert "Lambda" in json.dumps(json.loads(archive.read("config.json")))
    return path


@pytest.mark.slow
def test_unsafe_model_is_refused(tmp_path):
    path = lambda_model_file(tmp_path)
    with pytest.raises(UserError) as caught:
        firstnet_model.load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot load this model safely")
    assert "train a new one" in message and "\n" not in message
    # The reference: Keras itself refuses it in safe mode.
    with pytest.raises(ValueError, match="(?i)unsafe|safe_mode"):
        keras.saving.load_model(path, safe_mode=True)


def zip_holding(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path.read_bytes()


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PK\x03\x04 truncated zip", "zip of notes"],
                         ids=["random-bytes", "empty", "truncated-zip", "zip-without-config"])
def test_a_file_that_is_no_keras_archive_is_named_so(tmp_path, content):
    path = tmp_path / "model.keras"
    if content == "zip of notes":
        content = zip_holding(tmp_path / "notes.zip", {"notes.txt": "not a model"})
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        firstnet_model.load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a Keras model archive") and "\n" not in message
    assert "File not found" not in message and "retrain it with `firstnet train`" in message


def test_an_archive_keras_cannot_read_is_refused(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(zip_holding(tmp_path / "broken.zip", {"config.json": "{not json"}))
    with pytest.raises(UserError, match="cannot load this model safely") as caught:
        firstnet_model.load_model(path)
    assert "\n" not in str(caught.value)


def test_missing_or_misnamed_model_is_refused(tmp_path):
    with pytest.raises(UserError, match="no such model; train one with `firstnet train`"):
        firstnet_model.load_model(tmp_path / "nothing_here")
    weights = tmp_path / "model.h5"
    weights.write_bytes(b"HDF")
    with pytest.raises(UserError, match="not a .keras file"):
        firstnet_model.load_model(weights)


def test_cosine_schedule_falls_from_the_learning_rate_to_zero():
    optimizer = firstnet_model.make_optimizer("rmsprop", 0.004, schedule="cosine", decay_steps=100)
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    values = [float(schedule(step)) for step in (0, 50, 100, 150)]
    assert values[0] == pytest.approx(0.004) and values[1] == pytest.approx(0.002) and values[2:] == [0.0, 0.0]
    assert firstnet_model.starting_learning_rate(optimizer) == pytest.approx(0.004)
    assert firstnet_model.starting_learning_rate(firstnet_model.make_optimizer("rmsprop")) == pytest.approx(0.001)
    # Without a learning rate, the schedule starts from the optimizer's own default.
    adam = firstnet_model.make_optimizer("adam", schedule="cosine", decay_steps=10)
    assert isinstance(adam, keras.optimizers.Adam) and firstnet_model.starting_learning_rate(adam) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="unknown learning rate schedule 'linear'"):
        firstnet_model.make_optimizer("rmsprop", schedule="linear")
    with pytest.raises(ValueError, match="needs the number of weight updates"):
        firstnet_model.make_optimizer("rmsprop", schedule="cosine")


@pytest.mark.slow
def test_the_convnet_learns_and_reloads_on_every_backend(tmp_path, mnist):
    # On torch and TensorFlow the convnet trains through Keras's own model.fit (the compiled loop is JAX's): a
    # small set and two epochs show that it learns there too and that its saved model answers the same.
    import dataclasses

    from firstnet import train

    small = dataclasses.replace(mnist, x_train=mnist.x_train[:6000], y_train=mnist.y_train[:6000],
                                x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])
    config = train.TrainConfig(**{**train.CONVNET, "epochs": 2}, seed=0, runs_root=str(tmp_path), verbose=0)
    result = train.train(config, data=small)
    # Measured: 0.93 to 0.95 on these 500 test digits after two epochs of 6,000; chance is 0.10.
    assert result.metrics["test_accuracy"] >= 0.85 and result.metrics["backend"] == keras.backend.backend()
    reloaded = firstnet_model.load_model(result.run_dir / "model.keras")
    images = small.x_test[:64, :, :, None].astype("float32") / 255
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), result.model.predict(images, verbose=0), atol=1e-5)
