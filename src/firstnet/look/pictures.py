"""Inside a convnet, or a network trained on your own pictures: its filters, one picture's feature maps layer by
layer, its mistakes and confusions by class name, and the representation its last layer reads.

The tutorial's look (look/__init__.py) replays the dense network's first epoch on MNIST's 784 pixels; these
figures need no replay, so they work for any set and either model family.
"""

import numpy as np

from firstnet import calibration, evaluate, files, model as firstnet_model, plots
from firstnet.data import prepare_images
from firstnet.look.mistakes import calibration_summary, worst_mistakes
from firstnet.look.representation import hidden_weights, knn_accuracy, pca_2d

FIGURES = {
    "filters": "look_filters.png",
    "feature_maps": "look_feature_maps.png",
    "weights": "look_weights.png",
    "mistakes": "look_mistakes.png",
    "confusion": "look_confusion.png",
    "representation": "look_representation.png",
    "training": "look_training.png",
    "reliability": "look_reliability.png",
}


def look_pictures(run_dir, model, metrics, history, data, sample_count=2000, mistake_count=12):
    """Compute the figures and look.json for a convnet run or a run on another set; write them; return look.json."""
    family = firstnet_model.model_family(model)
    names = list(data.class_names)
    inputs = prepare_images(data.x_test, firstnet_model.image_shape(model))
    probabilities = np.asarray(model.predict(inputs, batch_size=512, verbose=0))
    predicted = probabilities.argmax(axis=1)
    accuracy = float((predicted == data.y_test).mean())
    mistakes = worst_mistakes(probabilities, data.y_test, mistake_count)
    for mistake in mistakes:
        mistake["true_name"], mistake["predicted_name"] = names[mistake["true"]], names[mistake["predicted"]]
    sample = slice(0, sample_count)
    features = penultimate(model, inputs[sample])
    labels = np.asarray(data.y_test[sample], dtype=np.int64)
    raw, learned = pca_2d(inputs[sample].reshape(len(labels), -1)), pca_2d(features)
    separability = {"raw": knn_accuracy(raw, labels), "hidden": knn_accuracy(learned, labels)}
    figures = {
        "mistakes": _mistakes_figure(data.x_test, mistakes),
        "confusion": plots.confusion_figure(evaluate.confusion_matrix(data.y_test, predicted, len(names)),
                                            title=f"test pictures: true class vs prediction (accuracy {accuracy:.4f})",
                                            class_names=names),
        "representation": _representation_figure(raw, learned, labels, names, separability, features.shape[1]),
        "training": _training_figure(history),
        "reliability": calibration.reliability_figure(probabilities, data.y_test),
    }
    if family == "convnet":
        figures["filters"] = filters_figure(model)
        figures["feature_maps"] = feature_maps_figure(model, inputs[0], names[int(data.y_test[0])])
    else:
        figures["weights"] = _dense_weights_figure(model, data.image_shape)
    summary = {
        "run_dir": str(run_dir), "model": family, "data_source": data.source, "class_names": names,
        "test_digits": int(len(data.y_test)), "test_accuracy": accuracy,
        "test_digits_note": evaluate.seen_in_training_note(metrics, data),
        "separability": {**separability, "method": f"5-NN accuracy, 5-fold cross-validated, in the 2-D PCA plane "
                                                   f"of the first {len(labels)} test pictures"},
        "worst_mistakes": mistakes,
        "training": {"replayed": False, "seed": metrics.get("seed"),
                     "verdict": "no replay: the loss per epoch from history.json"},
        "calibration": calibration_summary(probabilities, data.y_test),
        "figures": {name: FIGURES[name] for name in figures},
    }
    for name, figure in figures.items():
        plots.save_figure(figure, run_dir / FIGURES[name])
    files.write_json(run_dir / "look.json", summary)
    return summary


def penultimate(model, inputs):
    """What the output layer reads for each input: the outputs of the layer before the softmax."""
    import keras

    reader = keras.Model(model.inputs, model.layers[-2].output)
    return np.asarray(reader.predict(inputs, batch_size=512, verbose=0)).reshape(len(inputs), -1)


def filters_figure(model):
    """The first convolution's filters, each a small picture of the pattern it finds (red: ink there raises it)."""
    import keras

    plt = plots._pyplot()
    layer = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel.value))  # (rows, columns, channels, filters)
    count = kernel.shape[-1]
    columns = 8
    figure, axes_grid = plt.subplots(-(-count // columns), columns, figsize=(1.4 * columns, 1.5 * -(-count // columns) + 0.8),
                                     squeeze=False)
    limit = float(np.abs(kernel).max()) or 1.0
    for index, axes in enumerate(axes_grid.flat):
        axes.set_xticks([])
        axes.set_yticks([])
        if index >= count:
            axes.axis("off")
            continue
        # A colour filter is shown by its mean over the channels: where it looks for light, where for dark.
        axes.imshow(kernel[..., index].mean(axis=-1), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_title(f"filter {index}", fontsize=8)
    figure.suptitle(f"{layer.name}: its {count} {kernel.shape[0]}x{kernel.shape[1]} filters "
                    "(red: brightness there raises the filter's output, blue lowers it)")
    return figure


def feature_maps_figure(model, image, name, per_layer=8):
    """One test picture as each layer sees it: the first `per_layer` feature maps of each convolution and pooling."""
    import keras

    plt = plots._pyplot()
    shown = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D,
                                                                   keras.layers.ReLU))]
    reader = keras.Model(model.inputs, [layer.output for layer in shown])
    maps = [np.asarray(values)[0] for values in reader.predict(image[np.newaxis], verbose=0)]
    figure, axes_grid = plt.subplots(len(shown) + 1, per_layer, figsize=(1.3 * per_layer, 1.45 * (len(shown) + 1) + 0.6),
                                     squeeze=False)
    for axes in axes_grid.flat:
        axes.set_xticks([])
        axes.set_yticks([])
        axes.axis("off")
    axes_grid[0, 0].axis("on")
    axes_grid[0, 0].imshow(image.squeeze(), cmap=None if image.shape[-1] == 3 else "gray")
    axes_grid[0, 0].set_title(f"input: {name}", fontsize=8)
    for row, (layer, values) in enumerate(zip(shown, maps), start=1):
        for column in range(min(per_layer, values.shape[-1])):
            axes = axes_grid[row, column]
            axes.axis("on")
            axes.imshow(values[..., column], cmap="viridis")
            axes.set_title(f"{layer.name} #{column}" if column == 0 else f"#{column}", fontsize=7)
    figure.suptitle("one test picture, layer by layer: each map is where one filter found its pattern "
                    f"(the first {per_layer} maps of each layer)")
    return figure


def _dense_weights_figure(model, image_shape):
    """The dense network's first-layer weights of units 0..15, each drawn in the shape of one picture."""
    plt = plots._pyplot()
    kernel, _ = hidden_weights(model)
    figure, axes_grid = plt.subplots(2, 8, figsize=(12, 3.6), squeeze=False)
    limit = float(np.abs(kernel[:, :16]).max()) or 1.0
    for unit, axes in enumerate(axes_grid.flat):
        axes.set_xticks([])
        axes.set_yticks([])
        if unit >= kernel.shape[1]:
            axes.axis("off")
            continue
        weights = kernel[:, unit].reshape(image_shape)
        axes.imshow(weights.mean(axis=-1) if weights.ndim == 3 else weights, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_title(f"unit {unit}", fontsize=8)
    figure.suptitle("first-layer weights of hidden units 0..15, each in the shape of a picture (red raises the unit)")
    return figure


def _mistakes_figure(images, mistakes, columns=6):
    titles = [f"#{m['index']}: true {m['true_name']}\nsaid {m['predicted_name']} (p={m['probability']:.3f})"
              for m in mistakes]
    if not mistakes:
        plt = plots._pyplot()
        figure = plt.figure(figsize=(6, 1))
        figure.suptitle("no mistakes on the test pictures")
        return figure
    return plots.grid_figure([images[m["index"]] for m in mistakes], titles, max(1, -(-len(mistakes) // columns)),
                             columns, suptitle="the worst mistakes: misclassified test pictures with the highest loss")


def _representation_figure(raw, learned, labels, names, separability, feature_count):
    plt = plots._pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(13, 5.8))
    colours = plt.cm.tab20 if len(names) > 10 else plt.cm.tab10
    for axes, points, what, score in ((panels[0], raw, "raw pixels", separability["raw"]),
                                      (panels[1], learned, f"what the output layer reads ({feature_count} numbers)",
                                       separability["hidden"])):
        for label, name in enumerate(names):
            chosen = labels == label
            axes.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.7, color=colours(label % 20), label=name)
        axes.set_title(f"{what}\n5-NN accuracy in this plane: {score:.3f}")
        axes.grid(alpha=0.3)
    panels[1].legend(title="true class", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3)
    figure.suptitle(f"the same {len(labels)} test pictures, projected to 2-D by PCA")
    figure.tight_layout()
    return figure


def _training_figure(history):
    plt = plots._pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    losses = history.get("loss") or []
    axes.plot(range(1, len(losses) + 1), losses, marker="o", label="training loss")
    if history.get("val_loss"):
        axes.plot(range(1, len(history["val_loss"]) + 1), history["val_loss"], marker="o", label="validation loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.legend()
    axes.set_title("the loss per epoch (history.json)")
    return figure
