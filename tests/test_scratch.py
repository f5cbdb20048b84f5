"""The NumPy twin computes what Keras computes: gradients, optimizer steps, initial weights, and the trained result."""

import dataclasses
import json
import math
import warnings

import jax
import keras
import numpy as np
import pytest

from conftest import needs_full_mnist, run_firstnet
from firstnet import data as mnist_data, evaluate, model as firstnet_model, scratch, train
from firstnet.errors import UserError

TIMING_KEYS = {"import_seconds", "data_seconds", "data_wait_seconds", "fit_seconds", "evaluate_seconds", "save_seconds",
               "total_seconds", "started_at", "finished_at", "run_dir"}


def real_batch(mnist, count, dtype=np.float32):
    images = mnist_data.prepare_images(mnist.x_train[:count]).astype(dtype)
    return images, mnist_data.one_hot(mnist.y_train[:count]).astype(dtype)


def relative_error(first, second):
    return np.linalg.norm(first - second) / max(np.linalg.norm(first), np.linalg.norm(second), 1e-30)


def value_and_gradients(function, values):
    """`function(values)` and its gradients, differentiated by the backend Keras runs on (its own autodiff)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return jax.value_and_grad(function)(values)
    if backend == "torch":
        import torch

        leaves = [torch.tensor(np.asarray(keras.ops.convert_to_numpy(value)), requires_grad=True) for value in values]
        value = function(leaves)
        value.backward()
        return value.detach(), [leaf.grad for leaf in leaves]
    import tensorflow as tf

    leaves = [tf.Variable(keras.ops.convert_to_numpy(value)) for value in values]
    with tf.GradientTape() as tape:
        value = function(leaves)
    return value, tape.gradient(value, leaves)


def keras_loss_and_gradients(params, images, targets):
    """Keras's answer: firstnet's Keras model with the same weights, its compiled loss, differentiated by the backend."""
    model = firstnet_model.build_model(hidden_units=len(params["hidden_bias"]))
    model.set_weights([params[name] for name in scratch.PARAMETER_NAMES])
    loss_function = keras.losses.CategoricalCrossentropy()  # What compile(loss="categorical_crossentropy") uses.

    def loss_of(trainable_values):
        probabilities, _ = model.stateless_call(trainable_values, [], images)
        return loss_function(targets, probabilities)

    names = [variable.path.split("/")[-2] + "_" + variable.name for variable in model.trainable_variables]
    assert names == list(scratch.PARAMETER_NAMES)  # The gradients below come back in this order.
    loss, gradients = value_and_gradients(loss_of, [variable.value for variable in model.trainable_variables])
    return float(keras.ops.convert_to_numpy(loss)), {name: np.asarray(keras.ops.convert_to_numpy(gradient))
                                                     for name, gradient in zip(names, gradients)}


def test_gradients_match_central_finite_differences_in_float64(mnist):
    images, targets = real_batch(mnist, 8, dtype=np.float64)
    rng = np.random.default_rng(1)
    params = scratch.init_params(rng, hidden_units=16, dtype=np.float64)
    # Non-zero biases, some negative enough to switch hidden units off, so the relu mask is exercised too.
    params["hidden_bias"] = rng.normal(0.0, 0.3, size=16)
    params["digits_bias"] = rng.normal(0.0, 0.3, size=10)
    _, gradients, _ = scratch.loss_and_gradients(params, images, targets)

    step = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            loss_above = scratch.cross_entropy(scratch.forward(params, images)[1], targets).mean()
            value[index] = original - step
            loss_below = scratch.cross_entropy(scratch.forward(params, images)[1], targets).mean()
            value[index] = original
            numeric[index] = (loss_above - loss_below) / (2 * step)
        assert np.abs(numeric).max() > 1e-4, f"{name}: the check would be empty"
        assert relative_error(gradients[name], numeric) < 1e-6, name


@pytest.mark.slow
def test_loss_and_gradients_match_keras_autodiff(mnist):
    images, targets = real_batch(mnist, 128)
    params = scratch.init_params(np.random.default_rng(2))
    params["hidden_bias"] = np.random.default_rng(3).normal(0.0, 0.1, size=512).astype(np.float32)
    loss, gradients, _ = scratch.loss_and_gradients(params, images, targets)
    keras_loss, keras_gradients = keras_loss_and_gradients(params, images, targets)

    assert loss.dtype == np.float32 and all(gradient.dtype == np.float32 for gradient in gradients.values())
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    for name in scratch.PARAMETER_NAMES:
        assert gradients[name].shape == keras_gradients[name].shape
        np.testing.assert_allclose(gradients[name], keras_gradients[name], rtol=1e-4, atol=1e-6, err_msg=name)


# Keras on TensorFlow computes this loss from the logits under the softmax, where it finds them, so it clips
# nothing: there the twin's (and JAX's and torch's) clipped loss is not TensorFlow's, by design of each.
@pytest.mark.slow
@pytest.mark.backend("jax", "torch")
def test_gradients_match_keras_where_its_probability_clipping_is_active(mnist):
    """With huge output weights some true-digit probabilities fall below 1e-7 or above 1 - 1e-7: Keras clips them."""
    images, targets = real_batch(mnist, 64)
    params = scratch.init_params(np.random.default_rng(4))
    params["digits_kernel"] *= 60
    _, probabilities = scratch.forward(params, images)
    true_probability = (probabilities * targets).sum(axis=1)
    assert (true_probability < 1e-7).any() and (true_probability > 1 - 1e-7).any()  # Both clips are exercised.
    assert ((true_probability > 1e-6) & (true_probability < 1 - 1e-6)).any()  # And some digits are not clipped.

    loss, gradients, _ = scratch.loss_and_gradients(params, images, targets)
    keras_loss, keras_gradients = keras_loss_and_gradients(params, images, targets)
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    for name in scratch.PARAMETER_NAMES:
        scale = np.abs(keras_gradients[name]).max()
        np.testing.assert_allclose(gradients[name], keras_gradients[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("learning_rate", [None, 0.01])
def test_rmsprop_steps_match_keras_rmsprop(learning_rate):
    rng = np.random.default_rng(5)
    params = scratch.init_params(rng, hidden_units=32)
    start = {name: value.copy() for name, value in params.items()}
    variables = [keras.Variable(params[name]) for name in scratch.PARAMETER_NAMES]
    optimizer = keras.optimizers.RMSprop() if learning_rate is None else keras.optimizers.RMSprop(learning_rate)
    state = scratch.init_rmsprop(params)

    for step in range(4):
        # Gradients from tiny to large: where epsilon sits, sqrt(v + eps) or sqrt(v) + eps, shows with tiny ones.
        gradients = {name: (rng.normal(size=value.shape) * 10.0 ** rng.integers(-5, 1, size=value.shape)).astype(np.float32)
                     for name, value in params.items()}
        # As the backend's own tensors: a torch optimizer takes no NumPy arrays.
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(gradients[name]) for name in scratch.PARAMETER_NAMES],
                                      variables))
        scratch.rmsprop_step(params, gradients, state,
                             **({} if learning_rate is None else {"learning_rate": learning_rate}))
        assert state["iterations"] == int(optimizer.iterations.value) == step + 1
        for name, variable in zip(scratch.PARAMETER_NAMES, variables):
            assert params[name].dtype == np.float32
            # Compare the distance travelled, not the weights, so a small error in the step cannot hide.
            np.testing.assert_allclose(params[name] - start[name], keras.ops.convert_to_numpy(variable) - start[name],
                                       rtol=1e-4, atol=1e-8, err_msg=f"{name} after step {step + 1}")


def test_training_steps_match_keras_train_on_batch(mnist):
    """Loss, gradients and optimizer together: three batches through model.train_on_batch and through the twin."""
    images, targets = real_batch(mnist, 3 * 128)
    params = scratch.init_params(np.random.default_rng(6))
    model = scratch.to_keras_model(params)
    state = scratch.init_rmsprop(params)
    for start in range(0, len(images), 128):
        batch = slice(start, start + 128)
        keras_loss = model.train_on_batch(images[batch], targets[batch])[0]
        loss, gradients, _ = scratch.loss_and_gradients(params, images[batch], targets[batch])
        scratch.rmsprop_step(params, gradients, state)
        assert loss == pytest.approx(keras_loss, rel=1e-5)
    for name, keras_weight in zip(scratch.PARAMETER_NAMES, model.get_weights()):
        np.testing.assert_allclose(params[name], keras_weight, rtol=1e-4, atol=1e-6, err_msg=name)
    # The optimizer's own state agrees too: the step count and each running average of squared gradients.
    assert state["iterations"] == int(model.optimizer.iterations.value) == 3
    keras_velocities = {variable.name: keras.ops.convert_to_numpy(variable) for variable in model.optimizer.variables}
    for name in scratch.PARAMETER_NAMES:
        np.testing.assert_allclose(state["velocities"][name], keras_velocities[f"firstnet_{name}_velocity"],
                                   rtol=1e-4, atol=1e-12, err_msg=name)


def test_glorot_init_matches_keras():
    params = scratch.init_params(np.random.default_rng(7))
    model = firstnet_model.build_model()
    assert [params[name].shape for name in scratch.PARAMETER_NAMES] == [weight.shape for weight in model.get_weights()]
    assert all(value.dtype == np.float32 for value in params.values())
    assert not params["hidden_bias"].any() and not params["digits_bias"].any()

    for layer, name in (("hidden", "hidden_kernel"), ("digits", "digits_kernel")):
        initializer = model.get_layer(layer).kernel_initializer
        assert isinstance(initializer, keras.initializers.GlorotUniform)
        assert isinstance(model.get_layer(layer).bias_initializer, keras.initializers.Zeros)
        fan_in, fan_out = params[name].shape
        # Keras's VarianceScaling(scale=1, mode="fan_avg", distribution="uniform"): limit = sqrt(3 * scale / n).
        assert scratch.glorot_limit(fan_in, fan_out) == pytest.approx(math.sqrt(3.0 / ((fan_in + fan_out) / 2.0)))
        limit = scratch.glorot_limit(fan_in, fan_out)
        keras_sample = keras.ops.convert_to_numpy(initializer(shape=(fan_in, fan_out)))
        for sample in (params[name], keras_sample):
            assert np.abs(sample).max() <= limit
            assert np.abs(sample).max() > 0.99 * limit
            assert sample.std() == pytest.approx(limit / math.sqrt(3), rel=0.03)  # The std of U(-a, a) is a / sqrt(3).


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, mnist):
    """The tutorial's recipe trained once by the twin with seed 0, like conftest's `trained_run` for Keras."""
    run_dir = tmp_path_factory.mktemp("scratch") / "seed0"
    return scratch.train(train.TrainConfig(seed=0, run_dir=str(run_dir), verbose=0), data=mnist)


def test_seed_recipe_lands_within_half_a_point_of_keras(scratch_run, trained_run):
    twin, reference = scratch_run.metrics, trained_run.metrics
    assert twin["data_full"] and twin["epochs_completed"] == 5 and not twin["interrupted"]
    assert twin["test_accuracy"] >= 0.97
    assert abs(twin["test_accuracy"] - reference["test_accuracy"]) <= 0.005
    assert abs(twin["test_loss"] - reference["test_loss"]) <= 0.03


def test_scratch_run_folder_is_what_train_writes(scratch_run, trained_run, mnist):
    run_dir = scratch_run.run_dir
    for file in ("model.keras", "history.json", "curves.png", "confusion.png", "metrics.json"):
        assert (run_dir / file).is_file(), file
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(trained_run.metrics) <= set(metrics)  # Every key `train` writes; consumers of runs rely on them.
    assert metrics["backend"] == "numpy-scratch" and metrics["seed"] == 0 and metrics["batch_size"] == 128
    assert metrics["learning_rate"] == trained_run.metrics["learning_rate"]
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == 10000 and np.trace(confusion) / 10000 == pytest.approx(metrics["test_accuracy"])
    history = json.loads((run_dir / "history.json").read_text())
    assert set(history) == {"loss", "accuracy"} and len(history["loss"]) == 5
    assert history["loss"] == sorted(history["loss"], reverse=True)

    # Keras, reloading the saved model safely, finds the optimizer state of 5 epochs of 469 steps, without a warning
    # about mismatched optimizer variables, and scores the test digits as the twin did (one digit of slack).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = firstnet_model.load_model(run_dir)
    assert not [warning for warning in caught if "optimizer" in str(warning.message)]
    assert int(model.optimizer.iterations.value) == 5 * math.ceil(60000 / 128)
    scores = evaluate.evaluate_model(model, mnist.x_test, mnist.y_test)
    assert scores["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    assert scores["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)


@pytest.mark.slow
@needs_full_mnist
def test_cli_scratch_same_seed_same_metrics_with_validation(tmp_path):
    outputs, metrics = [], []
    for attempt in ("first", "second"):
        result = run_firstnet("scratch", "--epochs", "1", "--seed", "3", "--validation-split", "0.1",
                              "--learning-rate", "0.002", "--run-dir", tmp_path / attempt, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
        metrics.append(json.loads((tmp_path / attempt / "metrics.json").read_text()))
    stdout = outputs[0]
    assert "422/422 steps - accuracy: " in stdout and " - val_accuracy: " in stdout
    assert f"test_acc: {metrics[0]['test_accuracy']:.4f}" in stdout
    assert f"test_loss: {metrics[0]['test_loss']:.4f}" in stdout
    assert metrics[0]["learning_rate"] == pytest.approx(0.002) and metrics[0]["validation_split"] == 0.1
    assert {key: value for key, value in metrics[0].items() if key not in TIMING_KEYS} == \
           {key: value for key, value in metrics[1].items() if key not in TIMING_KEYS}
    history = json.loads((tmp_path / "first" / "history.json").read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history["val_accuracy"][0] > 0.9


@pytest.mark.slow
def test_cli_scratch_refuses_other_optimizers_without_a_traceback(tmp_path):
    result = run_firstnet("scratch", "--optimizer", "adam", "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "only rmsprop" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_scratch_refuses_a_learning_rate_schedule(tmp_path, mnist):
    # `train --fast` decays its learning rate; the twin implements only the tutorial's constant one.
    config = train.TrainConfig(learning_rate_schedule="cosine", run_dir=str(tmp_path / "run"), verbose=0)
    with pytest.raises(UserError, match="keeps the tutorial's constant learning rate"):
        scratch.train(config, data=mnist)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="unknown learning rate schedule 'step'"):
        train.TrainConfig(learning_rate_schedule="step").check()


def test_interrupted_training_saves_what_was_trained(tmp_path, mnist):
    small = dataclasses.replace(mnist, x_train=mnist.x_train[:2000], y_train=mnist.y_train[:2000],
                                x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])

    def interrupt_after_first_epoch(event):
        if event.kind == "epoch_end" and event.epoch == 1:
            raise KeyboardInterrupt

    result = scratch.train(train.TrainConfig(epochs=3, seed=0, run_dir=str(tmp_path / "run")), data=small,
                           watchers=[interrupt_after_first_epoch])
    assert result.metrics["interrupted"] and result.metrics["epochs_completed"] == 1
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "model.keras").is_file()
    assert result.metrics["test_accuracy"] > 0.5


def test_validation_split_that_leaves_nothing_is_a_user_error(mnist, tmp_path):
    # The twin holds out what model.fit holds out, by the same rule (loops.split_validation), with the same error.
    tiny = dataclasses.replace(mnist, x_train=mnist.x_train[:10], y_train=mnist.y_train[:10])
    with pytest.raises(UserError, match="validation-split"):
        scratch.train(train.TrainConfig(epochs=1, validation_split=0.95, run_dir=str(tmp_path / "run")), data=tiny)
    assert not (tmp_path / "run").exists()  # floor(10 * 0.05) = 0 left for training: nothing was left behind.
