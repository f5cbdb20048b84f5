"""Your own pictures, prepared the same way everywhere: a folder of digit scans of any size is scored, predicted
and looked at as the run's pictures were made; colour photos of digits train the tutorial's dense network (their
paper taken away, data/folders.py); the compiled loop matches model.fit step for step on colour and odd sizes;
and a run that did not learn says so."""

import dataclasses

import keras
import numpy as np
import pytest
from PIL import Image

from firstnet import cli, data as firstnet_data, model as firstnet_model, train
from firstnet.data import folders
from firstnet.loops import compiled, events


def firstnet(*args):
    try:
        return cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        return exit.code


def on_paper(digit, side, rng):
    """An MNIST digit drawn in dark ink on light paper of a random colour, side x side RGB."""
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), np.float32)[..., None] / 255
    rgb = rng.uniform(150, 255, 3) * (1 - ink) + rng.uniform(0, 70, 3) * ink
    return rgb.round().astype(np.uint8)


def write_folder(root, images, labels, make):
    for index, (image, label) in enumerate(zip(images, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(make(image)).save(root / str(label) / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def colour_photos(mnist, tmp_path_factory):
    """600 MNIST training digits as 32x32 colour photos (dark ink, light paper of varying colour), one folder per digit."""
    rng = np.random.default_rng(0)
    return write_folder(tmp_path_factory.mktemp("colour") / "photos", mnist.x_train[:600], mnist.y_train[:600],
                        lambda digit: on_paper(digit, 32, rng))


@pytest.fixture(scope="module")
def mnist_run(mnist, tmp_path_factory):
    """A small MNIST run of the dense network (one epoch on 10,000 digits): enough to read scans."""
    small = dataclasses.replace(mnist, x_train=mnist.x_train[:10000], y_train=mnist.y_train[:10000],
                                x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])
    config = train.TrainConfig(epochs=2, hidden_units=64, seed=0, verbose=0,
                               run_dir=str(tmp_path_factory.mktemp("runs") / "mnist"))
    return train.train(config, data=small).run_dir


def test_the_dense_network_learns_colour_photos_of_digits(colour_photos, tmp_path):
    dataset = folders.load_class_folders(colour_photos, announce=lambda line: None)
    assert dataset.image_shape == (32, 32, 3) and dataset.preparation == "resized to 32x32, colour, paper removed"
    # The paper is taken away: most inputs are 0, as in MNIST.
    assert np.median(dataset.x_train) == 0
    result = train.train(train.TrainConfig(seed=0, verbose=0, run_dir=str(tmp_path / "run")), data=dataset)
    assert result.metrics["learned"] and result.metrics["test_accuracy"] > 0.6, result.metrics["test_accuracy"]


def test_scans_of_any_size_are_scored_predicted_and_looked_at_as_the_run_saw_them(mnist, mnist_run, tmp_path, capsys):
    scans = write_folder(tmp_path / "scans", mnist.x_test[:100], mnist.y_test[:100],
                         lambda digit: (235 - np.asarray(Image.fromarray(digit).resize((64, 64)), np.float32) * 0.85)
                         .astype(np.uint8))
    assert firstnet("evaluate", mnist_run, "--data", scans) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test_acc: ")[1].split()[0])
    assert accuracy > 0.7 and "data: " in out and "(100 test pictures, the set you named)" in out
    assert firstnet("predict", "--model", mnist_run, scans / "7") == 0


@pytest.mark.slow
def test_the_closing_hint_of_a_run_that_did_not_learn(mnist, tmp_path, capsys, monkeypatch):
    # A learning rate far too large for SGD makes the loss blow up: the run says so, and predicting is not offered.
    monkeypatch.setenv("FIRSTNET_DATA", str(tmp_path / "digits.npz"))
    np.savez(tmp_path / "digits.npz", x_train=mnist.x_train[:2000], y_train=mnist.y_train[:2000],
             x_test=mnist.x_test[:500], y_test=mnist.y_test[:500])
    code = firstnet("train", "--epochs", "2", "--optimizer", "sgd", "--learning-rate", "1e9", "--seed", "0",
                    "--hidden-units", "16", "--run-dir", tmp_path / "run", "--quiet")
    out = capsys.readouterr().out
    assert code == 0 and "this run did not learn" in out and "--optimizer adam" in out
    assert "firstnet predict YOUR_DIGIT.png" not in out
    from firstnet import runs

    assert runs.read_metrics(tmp_path / "run")["learned"] is False


@pytest.mark.parametrize("history, accuracy, learned", [
    ({"loss": [12.0, 14.5, 14.5]}, 0.1, False), ({"loss": [0.5, 0.2]}, 0.12, False),
    ({"loss": [float("nan")]}, 0.5, False), ({"loss": [0.5, 0.2]}, 0.97, True), ({"loss": [0.4]}, 0.9, True)])
def test_learning_verdict(history, accuracy, learned):
    assert train.learning_verdict(history, accuracy, 10)[0] is learned


def seeded(seed, shape, hidden_units=64):
    keras.utils.set_random_seed(seed)
    return firstnet_model.compile_model(firstnet_model.build_model("dense", shape, 10, hidden_units=hidden_units))


@pytest.mark.slow
@pytest.mark.backend("jax")
@pytest.mark.parametrize("shape", [(32, 32, 3), (20, 24)], ids=["colour 32x32", "grey 20x24"])
def test_compiled_loop_matches_model_fit_on_colour_and_other_sizes(mnist, shape):
    rng = np.random.default_rng(1)
    if len(shape) == 3:
        pictures = np.stack([folders.without_paper(on_paper(digit, shape[0], rng)) for digit in mnist.x_train[:1000]])
    else:
        pictures = np.stack([np.asarray(Image.fromarray(digit).resize(shape[::-1])) for digit in mnist.x_train[:1000]])
    dataset = dataclasses.replace(mnist, x_train=pictures, y_train=mnist.y_train[:1000], x_test=pictures[:100],
                                  y_test=mnist.y_train[:100], preparation=folders.preparation_of(shape))
    config = train.TrainConfig(epochs=2, batch_size=128, hidden_units=64, verbose=0)

    reference = seeded(7, shape)
    fitted = reference.fit(firstnet_data.prepare_images(pictures, reference.inputs[0].shape[1:]),
                           firstnet_data.one_hot(dataset.y_train), epochs=2, batch_size=128, shuffle=False, verbose=0)
    ours = seeded(7, shape)
    assert compiled.unsupported(ours) is None
    history = events.History()
    facts = compiled.fit(ours, dataset, config, 0, events.Broadcast([history]), shuffle=False)
    assert facts["fallbacks"] == []
    for expected, found in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(found, expected, rtol=2e-4, atol=2e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], fitted.history[key], rtol=1e-4)


def test_evaluate_on_a_collection_says_its_count_once(mnist, mnist_run, tmp_path, capsys):
    from firstnet.data import collection

    store = collection.Collection(tmp_path / "ours")
    for digit, label in zip(mnist.x_test[:30], mnist.y_test[:30]):
        store.add_prepared(digit, str(label))
    assert firstnet("evaluate", mnist_run, "--data", tmp_path / "ours", "--out", tmp_path / "m.png") == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("data: "))
    assert line.count("30") == 1 and "the set you named" in line, line
