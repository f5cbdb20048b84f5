"""Look inside a trained run: its weights, its worst mistakes, the representation its hidden layer learned, how it learned.

Each idea has a file of its own here: representation.py, mistakes.py, toy.py, weights.py, replay.py. `look()`
computes them all for one run and writes their figures and look.json into the run folder.
"""

import pathlib

import numpy as np

from firstnet import calibration, evaluate, files, model as firstnet_model, plots, run_files, runs
from firstnet.data import load_run_data, prepare_images
from firstnet.errors import UserError
from firstnet.look.mistakes import calibration_summary, cell_figure, mistakes_figure, worst_mistakes
from firstnet.look.pictures import look_pictures
from firstnet.look.replay import (TRACKED_PIXEL, Replay, _training_summary, compare_replay, replay_first_epoch,
                                  replay_verdict, training_figure)
from firstnet.look.representation import (FOLDS, NEIGHBOURS, SAMPLE_COUNT, hidden_activations, hidden_weights, knn_accuracy,
                                          knn_predict, pca_2d, representation, representation_figure)
from firstnet.look.toy import best_threshold_accuracy, toy_change_of_axes, toy_figure
from firstnet.look.weights import weights_figure

__all__ = ["FIGURES", "FOLDS", "NEIGHBOURS", "SAMPLE_COUNT", "TRACKED_PIXEL", "Replay", "best_threshold_accuracy",
           "calibration_summary", "compare_replay", "find_run", "format_cell", "format_summary", "hidden_activations", "hidden_weights", "knn_accuracy",
           "knn_predict", "look", "look_cell", "mistakes_figure", "pca_2d", "replay_first_epoch", "replay_verdict", "representation",
           "representation_figure", "toy_change_of_axes", "toy_figure", "training_figure", "weights_figure",
           "worst_mistakes"]

FIGURES = {
    "weights": "look_weights.png",
    "mistakes": "look_mistakes.png",
    "confusion": "look_confusion.png",
    "representation": "look_representation.png",
    "toy": "look_toy_axes.png",
    "training": "look_training.png",
    "reliability": "look_reliability.png",
}


def find_run(run_dir=None, root=runs.DEFAULT_RUNS_ROOT):
    """The run folder to look into: the one named, else the newest finished run under `root`."""
    if run_dir is None:
        if not runs.list_runs(root):
            raise UserError(f"no finished run in {root}/; train one with `firstnet train`, or pass RUN_DIR")
        return runs.latest_run(root)
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; `firstnet runs` lists them, `firstnet train` makes one")
    if not (run_dir / "model.keras").is_file():
        raise UserError(f"{run_dir}: has no model.keras, so it is not a finished run; train again with `firstnet train`")
    return run_dir


def look(run_dir=None, data=None, data_path=None, root=runs.DEFAULT_RUNS_ROOT, sample_count=SAMPLE_COUNT,
         mistake_count=12, replay=True):
    """Compute everything, then write the figures and look.json into the run folder; return look.json's contents.

    Nothing is written until all is computed, so a failure leaves the run folder as it was.
    """
    run_dir = find_run(run_dir, root)
    model = firstnet_model.load_model(run_dir / "model.keras")
    metrics = runs.read_metrics(run_dir) or {}
    history = run_files.read_history(run_dir) or {}
    # The run's own test digits, unless other data is named: scoring on digits it trained on would flatter it.
    data = data or load_run_data(metrics, data_path)
    if firstnet_model.model_family(model) == "convnet" or data.dataset != "mnist":
        # A convnet, or pictures other than MNIST's digits: filters and feature maps, no replay (look/pictures.py).
        return look_pictures(run_dir, model, metrics, history, data)

    probabilities = np.asarray(model.predict(prepare_images(data.x_test), batch_size=1024, verbose=0))
    predicted = probabilities.argmax(axis=1)
    confusion = evaluate.confusion_matrix(data.y_test, predicted)
    accuracy = float((predicted == data.y_test).mean())
    mistakes = worst_mistakes(probabilities, data.y_test, mistake_count)
    found = representation(model, data.x_test, data.y_test, sample_count)
    toy = toy_change_of_axes()
    replayed = replay_first_epoch(metrics, data) if replay else None
    kernel, _ = hidden_weights(model)
    comparison = compare_replay(replayed, history, metrics, kernel, data) if replayed else None
    units = list(range(min(16, kernel.shape[1])))
    initial_note = ("replayed from the seed; checked: the pixels never inked kept their initial weights exactly"
                    if comparison and comparison["initial_weights_verified"]
                    else "replayed from the seed, but they do not check out as the run's, so only indicative")

    figures = {
        "weights": weights_figure(kernel, units, replayed.initial_hidden_kernel if replayed else None, initial_note),
        "mistakes": mistakes_figure(data.x_test, mistakes),
        "confusion": plots.confusion_figure(confusion, title=f"test digits: true label vs prediction "
                                                              f"(accuracy {accuracy:.4f})"),
        "representation": representation_figure(found),
        "toy": toy_figure(toy),
        "training": training_figure(history, replayed, comparison),
        "reliability": calibration.reliability_figure(probabilities, data.y_test),
    }
    summary = {
        "run_dir": str(run_dir),
        "data_source": data.source,
        "test_digits": int(len(data.y_test)),
        "test_accuracy": accuracy,
        # Offline, the bundled test digits are MNIST training digits a full-MNIST model has already seen.
        "test_digits_note": evaluate.seen_in_training_note(metrics, data),
        "separability": {
            "raw": found.raw_separability,
            "hidden": found.hidden_separability,
            "method": f"{NEIGHBOURS}-NN accuracy, {FOLDS}-fold cross-validated, in the 2-D PCA plane of the first "
                      f"{len(found.labels)} test digits",
        },
        "worst_mistakes": mistakes,
        "weights": {"units": units, "shows_change": replayed is not None,
                    "initial_weights_verified": bool(comparison and comparison["initial_weights_verified"])},
        "toy": {"rule": "x > 0", "points": int(len(toy.black)),
                "rule_accuracy_new_axes": float(((toy.new[:, 0] > 0) == toy.black).mean()),
                "best_single_axis_accuracy_original": max(best_threshold_accuracy(toy.original[:, axis], toy.black)
                                                          for axis in range(2))},
        "training": _training_summary(history, replayed, comparison),
        "calibration": calibration_summary(probabilities, data.y_test),
        "figures": dict(FIGURES),
    }
    for name, figure in figures.items():
        plots.save_figure(figure, run_dir / FIGURES[name])
    files.write_json(run_dir / "look.json", summary)
    return summary


def look_cell(run_dir=None, true=0, predicted=0, data=None, data_path=None, root=runs.DEFAULT_RUNS_ROOT, shown=36):
    """From a mistake to its pictures: the test pictures of class `true` that the run reads as `predicted`.

    Writes look_cell_<true>_as_<predicted>.png into the run folder (the `shown` surest, with their probabilities)
    unless the cell is empty; returns a dict: `run_dir`, `true`, `predicted`, `pictures` (calibration.confusion_cell's
    list, the surest first), `class_names` and `figure` (its file name, or None).
    """
    run_dir = find_run(run_dir, root)
    model = firstnet_model.load_model(run_dir / "model.keras")
    data = data or load_run_data(runs.read_metrics(run_dir) or {}, data_path)
    inputs = prepare_images(data.x_test, firstnet_model.image_shape(model))
    probabilities = np.asarray(model.predict(inputs, batch_size=1024, verbose=0))
    try:
        pictures = calibration.confusion_cell(probabilities, data.y_test, true, predicted)
    except ValueError as error:
        raise UserError(f"--cell {true},{predicted}: {error}") from None
    found = {"run_dir": str(run_dir), "true": int(true), "predicted": int(predicted), "pictures": pictures,
             "class_names": [str(name) for name in data.class_names], "figure": None}
    if pictures:
        found["figure"] = f"look_cell_{int(true)}_as_{int(predicted)}.png"
        plots.save_figure(cell_figure(data.x_test, pictures[:shown], true, predicted, found["class_names"]),
                          run_dir / found["figure"])
    return found


def format_cell(found, listed=10):
    """`look_cell`'s answer in a few lines: how many, the surest few with their scores, and the figure."""
    names = found["class_names"]
    true, predicted = names[found["true"]], names[found["predicted"]]
    pictures = found["pictures"]
    if not pictures:
        return f"no test picture of {true} is read as {predicted} by {found['run_dir']}"
    what = "read right" if found["true"] == found["predicted"] else f"read as {predicted}"
    lines = [f"{len(pictures)} test pictures of {true} {what}, the surest first:"]
    lines += [f"  test #{p['index']:<5} p({predicted})={p['probability']:.3f}   p({true})={p['true_probability']:.4f}"
              for p in pictures[:listed]]
    if len(pictures) > listed:
        lines.append(f"  ... and {len(pictures) - listed} more")
    lines.append(f"wrote {pathlib.Path(found['run_dir']) / found['figure']}")
    return "\n".join(lines)


def format_summary(summary):
    """look.json in a few lines for the terminal."""
    separability = summary["separability"]
    lines = [
        f"looked inside {summary['run_dir']}: test accuracy {summary['test_accuracy']:.4f} on {summary['test_digits']} "
        f"test digits ({summary['data_source']})",
        *([summary["test_digits_note"]] if summary.get("test_digits_note") else []),
        f"representation: {separability['method']}:",
        f"  raw pixels   {separability['raw']:.3f}",
        f"  hidden layer {separability['hidden']:.3f}",
        "worst mistakes (highest loss first):",
    ]
    lines += [f"  test #{m['index']:<5} true {m['true']}, predicted {m['predicted']} with p={m['probability']:.3f} "
              f"(p(true)={m['true_probability']:.4f}, loss {m['loss']:.2f})" for m in summary["worst_mistakes"][:5]]
    training = summary["training"]
    if training["replayed"]:
        lines.append(f"training: epoch 1 replayed with {training['replay_loop']} from seed {training['seed']} "
                     f"({training['steps']} steps, a few weights recorded at each): {training['verdict']}")
    else:
        lines.append("training: no seed in metrics.json, so only the loss per epoch is shown")
    if summary.get("calibration"):
        lines.append(f"calibration: ECE {summary['calibration']['ece']:.4f} (0: as sure as it is right)")
    run_dir = pathlib.Path(summary["run_dir"])
    lines.append("wrote " + ", ".join(str(run_dir / name) for name in [*summary["figures"].values(), "look.json"]))
    return "\n".join(lines)
