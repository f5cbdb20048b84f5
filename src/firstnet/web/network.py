"""The network the page talks to: one loaded model, its run's facts, and what it makes of one picture: the answer,
why (explain.py), whether it is a digit at all (rules.py), and the smallest change that fools it (fool.py)."""

import logging
import pathlib
import threading

import numpy as np

from firstnet import explain, fool, images, predict, runs
from firstnet import data as mnist_data
from firstnet.errors import UserError
from firstnet.web import rules

TOP_UNITS = 8
# Each pixel's share of the score, to five significant digits: the same picture, in about half the JSON.
SIGNIFICANT_DIGITS = 5
# The most pixels the server decodes for one picture (a JPEG is first decoded at a reduced scale, for free): a
# 2000x2000 drawing costs well under a second and 100 MB, where a 4096x4096 one would cost seconds and half a GB.
MAX_PIXELS = 4_000_000

log = logging.getLogger(__name__)


class Busy(Exception):
    """The network is doing something long for someone else (fooling a digit): try again in a few seconds."""


class Network:
    """A loaded model plus a lock: Keras does not promise that `predict` is thread-safe, so calls take turns."""

    def __init__(self, model, model_path, learner=None):
        self.model = model
        self.model_path = pathlib.Path(model_path)
        self.metrics = runs.read_metrics(self.model_path.parent) or {}
        self.lock = threading.Lock()
        # The hidden layer's weights are copied out once: reading them per request would go through the backend.
        self.hidden_weights, self.hidden_biases = _layer_weights(model, "hidden")
        self.digit_weights, _ = _layer_weights(model, "digits")
        # A run of other pictures than digits prepares a picture as its training pictures were (predict.py), and
        # answers with its class names; a convnet has no hidden dense units to show.
        self.shape = predict.picture_shape(self.metrics)
        self.paper_removed = predict.paper_removed(self.metrics)
        self.class_names = predict.class_names_of(self.metrics, int(model.outputs[0].shape[-1]))
        if self.hidden_weights is not None and self.hidden_weights.shape[0] != images.FIELD * images.FIELD:
            self.hidden_weights = self.hidden_biases = None
        # Why this answer is shown for pictures prepared as 28x28 grey (digits, Fashion-MNIST, grey sets of that
        # size); fooling and "not a digit" for runs on MNIST's digits only, whose test digits and non-digits they use.
        self.explains = (self.shape or (images.FIELD, images.FIELD)) == (images.FIELD, images.FIELD)
        self.digits = predict.is_digit_run(self.metrics)
        # Fooling takes seconds: it works on a copy of the model of its own, one picture at a time, so that the
        # drawings go on being answered meanwhile.
        self.fool_lock = threading.Lock()
        self.fooling_model = None
        # The first calls compile the predict function and trace the gradient; pay that now, not on a learner's
        # first stroke.
        blank = np.zeros(self.shape or (images.FIELD, images.FIELD), dtype=np.uint8)
        self.probabilities(blank)
        if self.explains:
            try:
                self.explanation(blank)
            except Exception:  # noqa: BLE001 - a model explain.py cannot take still answers, without "why".
                log.exception("%s: its answers cannot be explained, so the page shows them without", self.model_path)
                self.explains = False
        self.rules = rules.RuleKeeper(self.model_path.parent, model, self.run_data, applies=self.digits, learner=learner)

    def info(self):
        """What the page shows about the model: where it came from and how well it did on the test digits."""
        return {
            "loaded": True,
            "model_path": str(self.model_path),
            "run": str(self.model_path.parent) if self.metrics else None,
            "test_accuracy": self.metrics.get("test_accuracy"),
            "epochs": self.metrics.get("epochs_completed", self.metrics.get("epochs")),
            "hidden_units": None if self.hidden_weights is None else int(self.hidden_weights.shape[1]),
            "model": self.metrics.get("model", "dense"),
            "class_names": self.class_names,
            "data_source": self.metrics.get("data_source"),
            "finished_at": self.metrics.get("finished_at"),
            # A run that did not learn (train.learning_verdict) says so on the page as on the terminal.
            "learned": self.metrics.get("learned"),
            "why": self.metrics.get("why"),
            # What deep learning is not (docs/not-cognition.md): which of the lesson's views this run has.
            "explains": self.explains,
            "fools": self.digits,
            "not_a_digit_rule": self.rules.state,
        }

    def probabilities(self, prepared):
        """The ten probabilities for one prepared 28x28 digit, computed by the same function as `firstnet predict`."""
        with self.lock:
            return predict.predict_digits(self.model, prepared[np.newaxis])[0]

    def analyse(self, image_bytes, name):
        """Everything the page shows for one picture: the answer, the ten probabilities, the input, the hidden units."""
        image = images.open_image(image_bytes, name=name, max_pixels=MAX_PIXELS)
        grey = images.to_grey(image)
        if grey.max() - grey.min() < 32:
            raise UserError("the picture is blank: draw a digit first (or upload a photo of one)")
        if self.shape is not None:
            from firstnet.data import folders

            prepared = folders.prepare_picture(image, self.shape, self.paper_removed)
        else:
            prepared = images.prepare_image(image)
        probabilities = self.probabilities(prepared)
        answer = {
            "digit": int(probabilities.argmax()),
            "label": self.class_names[int(probabilities.argmax())],
            "class_names": self.class_names,
            "probabilities": [float(value) for value in probabilities],
            # The page draws what the network saw in grey: a colour picture is shown by its brightness.
            "input": (prepared.mean(axis=-1) if prepared.ndim == 3 else prepared).round().astype(int).tolist(),
        }
        answer.update(self.strongest_units(prepared))
        answer["explanation"] = self.explanation(prepared) if self.explains else None
        # On a digit run, the honest answer beside the digit: "not a digit" once the run's rule is known. The
        # digit's probability is the one predict --json gives; the calibrated one is the rule's temperature's.
        answer["probability"] = answer["probabilities"][answer["digit"]]
        if self.digits:
            with self.lock:
                answer.update(self.rules.answer(self.model, prepared))
        else:
            answer.update(not_a_digit=None, unlike_digits=None, calibrated_probability=None)
        return answer

    def explanation(self, prepared):
        """Why the network gave its answer for one prepared 28x28 grey picture: each pixel's share of the score."""
        with self.lock:
            explained = explain.explain(self.model, prepared)
        attributions = [[float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in row] for row in explained["attributions"]]
        return {"digit": explained["digit"], "label": self.class_names[explained["digit"]],
                "probability": explained["probability"], "attributions": attributions, "method": explain.METHOD,
                "score": explained["score"], "baseline_score": explained["baseline_score"], "gap": explained["gap"]}

    def run_data(self):
        """The run's MNIST (its own test digits, as `firstnet evaluate` scores it), loaded once and kept."""
        return shared_run_data(self.metrics)

    def fool(self, index, target, min_probability=None):
        """`fool.fool` on test digit `index` of the run, as `firstnet fool` does, as plain JSON for the page."""
        if not self.digits:
            raise UserError("this run was not trained on MNIST's digits: fooling it works on digit runs (train one "
                            "from the page or with `firstnet train`)")
        data = self.run_data()
        count = len(data.x_test)
        if index >= count:
            raise UserError(f"index {index}: out of range; the test set has {count} digits, so use 0 to {count - 1}")
        label = int(data.y_test[index])
        if target == label:
            raise UserError(f"test digit {index} is a {label} already: choose another target digit")
        if not self.fool_lock.acquire(blocking=False):
            raise Busy("another digit is being fooled right now; try again in a few seconds")
        try:
            if self.fooling_model is None:
                from firstnet import model as firstnet_model

                self.fooling_model = firstnet_model.load_model(self.model_path)
            result = fool.fool(self.fooling_model, data.x_test[index], target, label=label,
                               min_probability=min_probability)
        except ValueError as error:  # The network misreads this digit already: the library's words say so.
            raise UserError(f"test digit {index}: {error}") from None
        finally:
            self.fool_lock.release()
        return {"index": index, "label": label, "test_digits": count, "target": result["target"],
                "original": result["original"].astype(int).tolist(), "fooled": result["fooled"].astype(int).tolist(),
                "difference": result["difference"].astype(int).tolist(), "read": result["read"],
                "read_probability": result["read_probability"], "fooled_read": int(np.argmax(result["probabilities"])),
                "probability": result["probability"], "probabilities": [float(p) for p in result["probabilities"]],
                "fooled_it": result["fooled_it"], "bound": result["bound"], "linf": result["linf"], "l2": result["l2"],
                "min_probability": result["min_probability"], "method": fool.METHOD}

    def strongest_units(self, prepared):
        """The hidden units that fire most for this digit, each with the pixel pattern it looks for.

        A hidden unit computes relu(pixels . weights + bias); its 784 first-layer weights, drawn as a 28x28 picture,
        show which pixels excite it (positive) and which inhibit it (negative). Its ten second-layer weights say
        which digits it votes for.
        """
        if self.hidden_weights is None:
            return {"hidden": [], "active_units": None, "hidden_units": None}
        pixels = mnist_data.prepare_images(prepared[np.newaxis])[0]
        activations = np.maximum(pixels @ self.hidden_weights + self.hidden_biases, 0.0)
        strongest = np.argsort(-activations, kind="stable")[:TOP_UNITS]
        hidden = []
        for unit in strongest:
            entry = {
                "unit": int(unit),
                "activation": float(activations[unit]),
                "weights": np.round(self.hidden_weights[:, unit].reshape(images.FIELD, images.FIELD), 4).tolist(),
            }
            if self.digit_weights is not None and self.digit_weights.shape[0] == len(activations):
                entry["votes"] = [float(value) for value in self.digit_weights[unit]]
            hidden.append(entry)
        return {"hidden": hidden, "active_units": int((activations > 0).sum()), "hidden_units": len(activations)}


# The last run's data, kept for the next network that trained on the same: runs from the page all train on the
# server's --data, and each would otherwise keep its own copy of MNIST (55 MB) for its rule and for fooling.
_shared_data = {"key": None, "data": None}
_shared_data_lock = threading.Lock()


def shared_run_data(run_metrics):
    """`data.load_run_data(run_metrics)`, shared with the last network whose run named the same data."""
    key = repr([(run_metrics or {}).get(name) for name in ("dataset", "data_path", "data_source", "preparation")])
    with _shared_data_lock:
        if _shared_data["key"] != key:
            _shared_data.update(key=None, data=None)
            _shared_data.update(data=mnist_data.load_run_data(run_metrics, announce=lambda line: None), key=key)
        return _shared_data["data"]


def _layer_weights(model, name):
    """(kernel, bias) of a Dense layer as numpy arrays, or (None, None) when the model has no layer of that name."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None, None
    weights = layer.get_weights()
    if len(weights) != 2 or weights[0].ndim != 2:
        return None, None
    return np.asarray(weights[0], dtype=np.float64), np.asarray(weights[1], dtype=np.float64)


def load_network(model_path=None, runs_root=runs.DEFAULT_RUNS_ROOT, learner=None):
    """The model named (a run folder or a .keras file), or the newest finished run's; None when there is none yet.

    A model the user named explicitly must load: a wrong path is an error, never a silent switch to another model.
    `learner` (a rules.Learner, the server's) learns the run's "not a digit" rule when the run folder has none.
    """
    from firstnet import model as firstnet_model

    if model_path is None:
        # The newest finished run (runs.latest_run): never a run stopped by Ctrl-C or a notebook's experiment, and a
        # damaged run folder is skipped with a note; with none, the page starts without a model.
        try:
            model_path = runs.latest_run(runs_root)
        except UserError:
            return None
    path = runs.resolve_model(model_path, root=runs_root)
    return Network(firstnet_model.load_model(path), path, learner=learner)
