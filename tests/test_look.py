"""`firstnet look`: figures and look.json for a trained run, each number checked against an independent computation."""

import json
import math
import shutil
import types

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from conftest import run_firstnet
from firstnet import data as mnist_data, evaluate, look, model as firstnet_model

KEYS = {"run_dir", "data_source", "test_digits", "test_accuracy", "separability", "worst_mistakes", "weights", "toy",
        "training", "calibration", "figures"}


@pytest.fixture(scope="module")
def looked(trained_run, tmp_path_factory):
    """`firstnet look` run as a user runs it, on a copy of the shared run (which stays read-only)."""
    run_dir = tmp_path_factory.mktemp("look") / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    result = run_firstnet("look", run_dir)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "look.json").read_text())
    return run_dir, result, summary


def test_look_json_and_figures_are_written_into_the_run_folder(looked, trained_run):
    run_dir, _, summary = looked
    assert set(summary) >= KEYS
    assert set(summary["figures"]) == {"weights", "mistakes", "confusion", "representation", "toy", "training",
                                       "reliability"}
    for name in summary["figures"].values():
        with Image.open(run_dir / name) as image:
            assert image.format == "PNG" and image.width > 500 and image.height > 300, name
    assert summary["weights"]["units"] == list(range(16)) and summary["weights"]["shows_change"] is True
    assert summary["test_digits"] == 10000
    assert summary["test_accuracy"] == pytest.approx(trained_run.metrics["test_accuracy"], abs=1e-4)
    assert not list(run_dir.glob(".*tmp*")), "no temporary files left behind"
    assert not (trained_run.run_dir / "look.json").exists(), "the shared run folder was written to"


def test_terminal_summary_names_the_numbers_and_the_files(looked):
    run_dir, result, summary = looked
    assert f"raw pixels   {summary['separability']['raw']:.3f}" in result.stdout
    assert f"hidden layer {summary['separability']['hidden']:.3f}" in result.stdout
    first = summary["worst_mistakes"][0]
    assert f"test #{first['index']:<5} true {first['true']}, predicted {first['predicted']}" in result.stdout
    assert str(run_dir / "look.json") in result.stdout and str(run_dir / "look_representation.png") in result.stdout
    assert f"calibration: ECE {summary['calibration']['ece']:.4f}" in result.stdout and summary["calibration"]["ece"] < 0.05


def test_summary_warns_only_when_the_test_digits_were_training_digits(looked):
    _, result, summary = looked
    assert summary["test_digits_note"] is None and "note:" not in result.stdout  # The real MNIST test set.
    bundled = mnist_data.Dataset(*(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8)) * 2,
                               source=mnist_data.BUNDLED_SOURCE)
    note = evaluate.seen_in_training_note({"data_full": True}, bundled)
    assert note.startswith("note: these 1 test digits are from MNIST's training set")
    assert evaluate.seen_in_training_note({"data_full": False}, bundled) is None  # Trained on the subset itself.
    assert note in look.format_summary({**summary, "test_digits_note": note}).splitlines()


def test_hidden_layer_separates_digits_better_than_raw_pixels(looked):
    separability = looked[2]["separability"]
    assert 0.1 < separability["raw"] < 1 and 0.1 < separability["hidden"] <= 1
    assert separability["hidden"] > separability["raw"] + 0.03


def test_separability_matches_keras_and_scikit_learn(looked, trained_run, mnist):
    """The same numbers from an independent path: Keras's own hidden layer output, scikit-learn's PCA and k-NN."""
    inputs = mnist_data.prepare_images(mnist.x_test[: look.SAMPLE_COUNT])
    labels = mnist.y_test[: look.SAMPLE_COUNT].astype(int)
    model = trained_run.model
    hidden_model = keras.Model(model.inputs, model.get_layer("hidden").output)
    activations = np.asarray(hidden_model.predict(inputs, verbose=0))
    assert np.allclose(activations, look.hidden_activations(model, inputs), atol=1e-4)
    folds = np.arange(len(labels)) % 5
    for name, points in (("raw", inputs), ("hidden", activations)):
        plane = PCA(n_components=2, svd_solver="full").fit_transform(points.astype(np.float64))
        assert np.allclose(np.abs(plane), np.abs(look.pca_2d(points)), atol=1e-3), name
        correct = 0
        for fold in range(5):
            classifier = KNeighborsClassifier(n_neighbors=5).fit(plane[folds != fold], labels[folds != fold])
            correct += int((classifier.predict(plane[folds == fold]) == labels[folds == fold]).sum())
        assert looked[2]["separability"][name] == pytest.approx(correct / len(labels), abs=0.005), name


def test_worst_mistakes_are_misclassified_and_the_highest_loss(looked, trained_run, mnist):
    mistakes = looked[2]["worst_mistakes"]
    probabilities = np.asarray(trained_run.model.predict(mnist_data.prepare_images(mnist.x_test), verbose=0),
                               dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    losses = -np.log(probabilities[np.arange(len(mnist.y_test)), mnist.y_test])
    assert len(mistakes) == 12
    for mistake in mistakes:
        index = mistake["index"]
        assert mistake["true"] == mnist.y_test[index] != mistake["predicted"] == predicted[index]
        assert mistake["probability"] == pytest.approx(probabilities[index, predicted[index]], abs=1e-4)
        assert mistake["loss"] == pytest.approx(losses[index], rel=1e-3)
    recorded = [mistake["loss"] for mistake in mistakes]
    assert recorded == sorted(recorded, reverse=True)
    # No misclassified digit left out has a higher loss than the last one shown.
    others = np.setdiff1d(np.flatnonzero(predicted != mnist.y_test), [mistake["index"] for mistake in mistakes])
    assert losses[others].max() <= recorded[-1] * (1 + 1e-3)


def test_worst_mistakes_on_a_handmade_case():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.01, 0.99]])
    labels = np.array([0, 0, 1, 1])
    found = look.worst_mistakes(probabilities, labels, count=5)
    assert [(m["index"], m["true"], m["predicted"]) for m in found] == [(1, 0, 1), (2, 1, 0)]
    assert found[0]["loss"] == pytest.approx(-math.log(0.2)) and found[0]["probability"] == pytest.approx(0.8)


def test_toy_new_axes_make_x_greater_than_zero_the_rule():
    toy = look.toy_change_of_axes()
    assert np.array_equal(toy.new[:, 0] > 0, toy.black)
    # In the original axes no single threshold on x or on y separates the colours: the change of axes was needed.
    for axis in range(2):
        assert look.best_threshold_accuracy(toy.original[:, axis], toy.black) < 1.0
    assert look.best_threshold_accuracy(toy.new[:, 0], toy.black) == 1.0
    # It is a change of axes (a rotation and a shift), not a distortion: distances between points are unchanged.
    def distances(points):
        return np.linalg.norm(points[:, None] - points[None], axis=2)
    assert np.allclose(distances(toy.original), distances(toy.new))


def test_best_threshold_accuracy_on_handmade_cases():
    assert look.best_threshold_accuracy(np.array([1.0, 2, 3, 4]), np.array([0, 0, 1, 1])) == 1.0
    assert look.best_threshold_accuracy(np.array([1.0, 2, 3, 4]), np.array([1, 1, 0, 0])) == 1.0
    assert look.best_threshold_accuracy(np.array([1.0, 2, 3, 4]), np.array([0, 1, 0, 1])) == 0.75


def test_toy_summary_in_look_json(looked):
    toy = looked[2]["toy"]
    assert toy["rule"] == "x > 0" and toy["rule_accuracy_new_axes"] == 1.0
    assert toy["best_single_axis_accuracy_original"] < 1.0


def test_replay_starts_from_the_runs_own_weights_and_follows_its_first_epoch(looked, trained_run):
    training = looked[2]["training"]
    assert training["replayed"] and training["seed"] == 0 and training["steps"] == math.ceil(60000 / 128)
    assert training["loss_per_epoch"] == trained_run.history["loss"]
    # Exact: the weights of pixels never inked in training are the run's initial weights, and equal the replay's.
    assert training["initial_weights_verified"] is True and training["never_inked_pixels"] > 0
    assert looked[2]["weights"]["initial_weights_verified"] is True
    # The replay runs the run's own loop (firstnet's compiled epochs on JAX, model.fit elsewhere) from the same seed:
    # the same batches in the same order through the same program, so its epoch-1 loss is the run's, not merely close.
    own_loop = "firstnet's compiled epochs" if trained_run.metrics["loop"] == "compiled" else "Keras's model.fit"
    assert training["run_loop"] == training["replay_loop"] == own_loop
    assert training["same_loop"] and training["matches_history"]
    assert training["replayed_epoch1_loss"] == pytest.approx(trained_run.history["loss"][0], rel=1e-6)
    assert "the same training" in training["verdict"]
    assert training["verdict"] in looked[1].stdout
    assert len(training["tracked_weights"]) == 6
    assert all(weight["initial"] != weight["after_epoch1"] for weight in training["tracked_weights"])


@pytest.mark.slow
@pytest.mark.parametrize("run_loop", ["fit", "compiled", "scratch"])
def test_replay_records_every_step_from_the_seeded_initial_weights(mnist, run_loop):
    from firstnet import scratch

    small = mnist_data.Dataset(mnist.x_train[:1000], mnist.y_train[:1000], mnist.x_test[:10], mnist.y_test[:10], "small")
    metrics = {"seed": 3, "hidden_units": 16, "batch_size": 32, "loop": run_loop}
    replay = look.replay_first_epoch(metrics, small)
    assert replay.loop == run_loop
    if run_loop == "scratch":
        # The NumPy twin's own initial weights, drawn from the seed as `firstnet scratch` draws them.
        fresh = scratch.init_params(np.random.default_rng(3), hidden_units=16)["hidden_kernel"]
    else:
        keras.utils.set_random_seed(3)
        fresh, _ = look.hidden_weights(firstnet_model.build_model(hidden_units=16))
    assert np.array_equal(replay.initial_hidden_kernel, fresh)
    assert list(replay.steps) == list(range(1, 33)) and replay.weights.shape == (33, 6)
    # The last running mean is the epoch's loss, as Keras reports it in the history.
    assert replay.running_loss[-1] == pytest.approx(replay.epoch_loss, rel=1e-6)
    for column, name in enumerate(replay.weight_names[:3]):
        unit = int(name.rsplit(" ", 1)[1])
        assert replay.weights[0, column] == fresh[look.TRACKED_PIXEL, unit]


@pytest.mark.slow
def test_look_at_a_scratch_run_replays_it_with_the_numpy_twin(mnist, tmp_path):
    from firstnet import scratch, train

    small = mnist_data.Dataset(mnist.x_train[:2000], mnist.y_train[:2000], mnist.x_test[:500], mnist.y_test[:500], "small")
    run = scratch.train(train.TrainConfig(epochs=1, hidden_units=16, seed=2, verbose=0, run_dir=str(tmp_path / "run")),
                        data=small)
    summary = look.look(run.run_dir, data=small, sample_count=200)
    training = summary["training"]
    # The run's own loop, so the same batches: the replay is the run's training, checked two ways.
    assert training["replay_loop"] == training["run_loop"] == "the NumPy twin"
    assert training["initial_weights_verified"] and training["matches_history"]
    assert "NOT" not in training["verdict"]


def test_initial_weight_check_catches_other_initial_weights():
    rng = np.random.default_rng(0)
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = 200  # Only this square is ever inked.
    initial = rng.normal(size=(784, 4)).astype(np.float32)
    trained = initial.copy()
    inked = np.zeros((28, 28), dtype=bool)
    inked[10:18, 10:18] = True
    trained[inked.reshape(-1)] += 0.1
    replay = look.Replay(seed=0, steps=np.arange(1, 3), running_loss=np.array([0.5, 0.4]), weights=np.zeros((3, 0)),
                         weight_names=[], initial_hidden_kernel=initial, epoch_loss=0.4)
    data = types.SimpleNamespace(x_train=images)
    comparison = look.compare_replay(replay, {"loss": [0.4]}, {}, trained, data)
    assert comparison["initial_weights_verified"] and comparison["never_inked_pixels"] == 784 - 64
    assert comparison["matches_history"] and "the same training" in look.replay_verdict(comparison)
    trained[0, 0] += 1e-6  # A corner pixel's weight that training could not have moved.
    comparison = look.compare_replay(replay, {"loss": [0.5]}, {}, trained, data)
    assert not comparison["initial_weights_verified"] and not comparison["matches_history"]
    assert "NOT the run's initial weights" in look.replay_verdict(comparison)
    assert "does NOT match" in look.replay_verdict(comparison)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path, trained_run):
    result = run_firstnet("look", tmp_path / "missing")
    assert result.returncode == 2 and "no such run folder" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    empty = tmp_path / "empty_run"
    empty.mkdir()
    result = run_firstnet("look", empty)
    assert result.returncode == 2 and "model.keras" in result.stderr and not any(empty.iterdir())

    result = run_firstnet("look", cwd=tmp_path)
    assert result.returncode == 2 and "no finished run" in result.stderr

    copy = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, copy)
    before = sorted(path.name for path in copy.iterdir())
    result = run_firstnet("look", copy, "--data", tmp_path / "no_such_mnist.npz")
    assert result.returncode == 2 and "--data" in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in copy.iterdir()) == before
