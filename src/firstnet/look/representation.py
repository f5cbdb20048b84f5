"""The representation idea: the same digits seen as raw pixels and as the trained hidden layer sees them, in 2-D."""

import dataclasses

import numpy as np

from firstnet import plots
from firstnet.data import prepare_images

SAMPLE_COUNT = 2000
NEIGHBOURS = 5
FOLDS = 5


def hidden_weights(model):
    """The first layer's kernel (784, units) and bias (units,), as NumPy arrays."""
    return _numpy(model.get_layer("hidden").kernel), _numpy(model.get_layer("hidden").bias)


def _numpy(variable):
    """A Keras variable's value as a NumPy array, on any backend (converting the variable itself warns under NumPy 2)."""
    import keras

    return np.array(keras.ops.convert_to_numpy(variable.value))


def hidden_activations(model, inputs):
    """What the hidden layer outputs for prepared inputs (n, 784): relu(inputs @ kernel + bias), computed in NumPy."""
    kernel, bias = hidden_weights(model)
    return np.maximum(np.asarray(inputs, dtype=np.float32) @ kernel + bias, 0.0)


def pca_2d(points):
    """Project points (n, features) onto their two directions of largest variance: principal component analysis.

    The directions are the top eigenvectors of the covariance matrix (features x features, small here, so this is
    quicker than an SVD of all the points). Each direction's sign is fixed so that its largest loading is positive,
    so the picture does not flip between runs.
    """
    points = np.asarray(points, dtype=np.float64)
    centred = points - points.mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centred.T @ centred)
    directions = eigenvectors[:, ::-1][:, :2].T.copy()
    largest = np.abs(directions).argmax(axis=1)
    directions *= np.sign(directions[np.arange(2), largest])[:, np.newaxis]
    return centred @ directions.T


def knn_predict(train_points, train_labels, query_points, neighbours=NEIGHBOURS):
    """Each query point takes the most common label among its nearest training points; a tie goes to the smaller label."""
    distances = ((query_points[:, np.newaxis, :] - train_points[np.newaxis, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :neighbours]
    votes = np.zeros((len(query_points), int(train_labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.arange(len(query_points))[:, np.newaxis], train_labels[nearest]), 1)
    return votes.argmax(axis=1)


def knn_accuracy(points, labels, neighbours=NEIGHBOURS, folds=FOLDS):
    """How well a point's neighbours in this plane predict its class: k-NN accuracy, cross-validated over `folds` folds.

    Point i is in fold i % folds, and each fold is predicted from the others, so no point votes for itself.
    """
    points, labels = np.asarray(points, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    fold_of = np.arange(len(points)) % folds
    correct = 0
    for fold in range(folds):
        held_out = fold_of == fold
        predicted = knn_predict(points[~held_out], labels[~held_out], points[held_out], neighbours)
        correct += int((predicted == labels[held_out]).sum())
    return correct / len(points)


@dataclasses.dataclass
class Representation:
    """Test digits projected to 2-D twice, from raw pixels and from the hidden layer, with a separability number each."""

    labels: np.ndarray
    raw: np.ndarray
    hidden: np.ndarray
    raw_separability: float
    hidden_separability: float
    hidden_units: int


def representation(model, images, labels, sample_count=SAMPLE_COUNT):
    """The first `sample_count` digits of `images`, seen as pixels and as the trained hidden layer sees them."""
    images, labels = images[:sample_count], np.asarray(labels[:sample_count], dtype=np.int64)
    inputs = prepare_images(images)
    activations = hidden_activations(model, inputs)
    raw, hidden = pca_2d(inputs), pca_2d(activations)
    return Representation(labels=labels, raw=raw, hidden=hidden, raw_separability=knn_accuracy(raw, labels),
                          hidden_separability=knn_accuracy(hidden, labels), hidden_units=activations.shape[1])


def representation_figure(found):
    """Raw pixels beside the hidden layer, each projected to its best 2-D plane, coloured by the true digit."""
    plt = plots._pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(13, 5.8))
    colours = plt.cm.tab10
    for axes, points, what, score in (
        (panels[0], found.raw, "raw pixels (784 numbers per digit)", found.raw_separability),
        (panels[1], found.hidden, f"the trained hidden layer ({found.hidden_units} relu units)", found.hidden_separability),
    ):
        for digit in range(10):
            chosen = found.labels == digit
            axes.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7, color=colours(digit), label=str(digit))
        axes.set_title(f"{what}\n{NEIGHBOURS}-NN accuracy in this plane: {score:.3f}")
        axes.set_xlabel("principal component 1")
        axes.set_ylabel("principal component 2")
        axes.grid(alpha=0.3)
    panels[1].legend(title="true digit", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3)
    figure.suptitle(f"the same {len(found.labels)} test digits, projected to 2-D by PCA: "
                    "the learned representation separates the classes better")
    figure.tight_layout()
    return figure
