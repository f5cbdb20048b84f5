"""The next lesson's convnet: its fast convolutions against JAX's own, its training on the real MNIST, every command."""

import dataclasses
import json

import numpy as np
import pytest

from firstnet import cli, model as firstnet_model, train

# The convnet's fast path and the numbers asserted here are the compiled JAX loop's; model.fit trains the same
# network on every backend, but too slowly on a CPU for the suite.
pytestmark = pytest.mark.backend("jax")


@pytest.mark.slow
@pytest.mark.parametrize("padding, channels", [((0, 0), 1), ((1, 1), 3)])
def test_convolutions_as_products_equal_jax_convolutions_and_their_gradients(padding, channels):
    import jax
    from jax import numpy as jnp

    from firstnet.loops.speedups import convolutions, retrace

    generator = np.random.default_rng(0)
    images = jnp.asarray(generator.normal(size=(4, 12, 10, channels)).astype(np.float32))
    kernel = jnp.asarray(generator.normal(size=(3, 3, channels, 5)).astype(np.float32))

    def network(images, kernel):
        out = jax.lax.conv_general_dilated(images, kernel, (1, 1), (padding, padding),
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"))
        pooled = jax.lax.reduce_window(out, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return jnp.sum(jnp.tanh(pooled) * jnp.arange(pooled.size).reshape(pooled.shape) / pooled.size)

    rewritten = retrace.replaced(network, convolutions.convolutions_rule, convolutions.pooling_rule)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(rewritten)(images, kernel))
    expected, expected_gradients = jax.value_and_grad(network, argnums=(0, 1))(images, kernel)
    found, found_gradients = jax.value_and_grad(rewritten, argnums=(0, 1))(images, kernel)
    np.testing.assert_allclose(found, expected, rtol=1e-5)
    for got, want in zip(found_gradients, expected_gradients):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_build_model_keeps_the_tutorial_and_adds_the_convnet():
    assert firstnet_model.build_model(hidden_units=512).count_params() == 784 * 512 + 512 + 5130
    convnet = firstnet_model.build_model("convnet", (28, 28), 10)
    assert firstnet_model.image_shape(convnet) == (28, 28, 1) and firstnet_model.model_family(convnet) == "convnet"
    assert firstnet_model.build_model("convnet", (36, 36, 3), 4).outputs[0].shape[-1] == 4
    with pytest.raises(ValueError, match="unknown model family"):
        firstnet_model.build_model("resnet")


@pytest.fixture(scope="module")
def convnet_run(tmp_path_factory, mnist):
    """The convnet's recipe on 12,000 real training digits, scored on all 10,000 test digits."""
    root = tmp_path_factory.mktemp("convnet")
    subset = dataclasses.replace(mnist, x_train=mnist.x_train[:12000], y_train=mnist.y_train[:12000])
    config = train.TrainConfig(**train.CONVNET, seed=0, runs_root=str(root), verbose=0)
    return train.train(config, data=subset), root


def test_the_convnet_trains_on_real_mnist_fast_and_well(convnet_run):
    result, _ = convnet_run
    metrics = result.metrics
    # 12,000 digits, 3 epochs: a quick check for the tests below (the full set is the next test's).
    assert metrics["test_accuracy"] >= 0.975
    assert metrics["model"] == "convnet" and metrics["image_shape"] == [28, 28] and metrics["loop"] == "compiled"
    assert "convolutions as matrix products" in metrics["speedups"] and not metrics["fallbacks"]


@pytest.mark.slow
def test_the_recipe_passes_99_2_percent_on_the_full_mnist(mnist, tmp_path):
    # The lesson's promise, on all 60,000 training digits: seeds 0, 1 and 2 reached 0.9928, 0.9927 and 0.9933
    # (benchmarks/CONVNET.md, which also times it against its peers). Seed 0 is checked here, in seconds, not timed.
    config = train.TrainConfig(**train.CONVNET, seed=0, runs_root=str(tmp_path), verbose=0)
    metrics = train.train(config, data=mnist).metrics
    assert metrics["test_accuracy"] >= 0.992 and metrics["train_samples"] == 60000 and metrics["data_full"]


def test_the_same_seed_gives_the_same_convnet(convnet_run, mnist, tmp_path):
    result, _ = convnet_run
    subset = dataclasses.replace(mnist, x_train=mnist.x_train[:12000], y_train=mnist.y_train[:12000])
    again = train.train(train.TrainConfig(**train.CONVNET, seed=0, runs_root=str(tmp_path), verbose=0), data=subset)
    assert again.metrics["test_accuracy"] == result.metrics["test_accuracy"]
    assert again.metrics["test_loss"] == result.metrics["test_loss"]


def test_every_command_takes_a_convnet_run(convnet_run, mnist, tmp_path, capsys):
    from PIL import Image

    result, root = convnet_run
    run_dir = str(result.run_dir)
    assert cli.main(["evaluate", run_dir]) == 0
    said = capsys.readouterr().out
    assert f"test_acc: {result.metrics['test_accuracy']:.4f}" in said
    Image.fromarray(255 - mnist.x_test[0]).resize((112, 112)).save(tmp_path / "seven.png")
    assert cli.main(["predict", str(tmp_path / "seven.png"), "--model", run_dir, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["label"] == "7" and answer["digit"] == 7
    assert cli.main(["look", run_dir]) == 0
    capsys.readouterr()
    for figure in ("look_filters.png", "look_feature_maps.png", "look_mistakes.png", "look_confusion.png"):
        assert (result.run_dir / figure).is_file()
    assert cli.main(["runs", "--root", str(root)]) == 0
    from firstnet.web import network

    page = network.load_network(run_dir)
    with open(tmp_path / "seven.png", "rb") as stream:
        answered = page.analyse(stream.read(), "seven.png")
    assert answered["label"] == "7" and answered["hidden"] == [] and page.info()["model"] == "convnet"


@pytest.mark.slow
def test_convolutions_that_cannot_be_rewritten_fall_back_to_xla_s_own(mnist, tmp_path, monkeypatch):
    from firstnet.loops.speedups import convolutions

    def moved(*arguments, **options):
        raise AttributeError("module 'jax.extend.core' has no attribute 'Literal'")

    monkeypatch.setattr(convolutions, "as_products", moved)  # In training, in validation and in scoring.
    subset = dataclasses.replace(mnist, x_train=mnist.x_train[:1024], y_train=mnist.y_train[:1024],
                                 x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])
    config = train.TrainConfig(**{**train.CONVNET, "epochs": 1}, seed=0, validation_split=0.25, runs_root=str(tmp_path),
                               verbose=0)
    metrics = train.train(config, data=subset).metrics
    # The plain compiled loop, XLA's convolutions, the same training: said, recorded, finished.
    assert metrics["loop"] == "compiled" and metrics["speedups"] == []
    assert metrics["fallbacks"] and metrics["fallbacks"][0].startswith("speed-ups off (AttributeError")
    assert metrics["epochs_completed"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_convnet_run_resumes_to_the_same_numbers(mnist, tmp_path):
    subset = dataclasses.replace(mnist, x_train=mnist.x_train[:1024], y_train=mnist.y_train[:1024],
                                 x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])

    def recipe(name, **more):
        return train.TrainConfig(**{**train.CONVNET, "epochs": 2}, seed=4, run_dir=str(tmp_path / name), verbose=0,
                                 **more)

    whole = train.train(recipe("whole"), data=subset).metrics

    def stop_in_epoch_two(event):
        if event.kind == "epoch_begin" and event.epoch == 2:
            raise KeyboardInterrupt

    stopped = train.train(recipe("stopped"), data=subset, watchers=[stop_in_epoch_two]).metrics
    assert stopped["interrupted"] and stopped["epochs_completed"] == 1
    resumed = train.train(train.TrainConfig(resume=str(tmp_path / "stopped"), verbose=0), data=subset).metrics
    # The checkpoint keeps the family: the convnet is rebuilt, not the tutorial's dense network.
    assert resumed["model"] == "convnet" and resumed["epochs_completed"] == 2
    for key in ("test_accuracy", "test_loss", "train_loss"):
        assert resumed[key] == whole[key], key
