"""Knowing when not to answer: a "not a digit" detector reading the network's hidden layer, and calibrated probabilities."""

import pathlib

import keras
import numpy as np

from firstnet import calibration, explain, files, nondigits

RULE_FILE = "not_a_digit.npz"
# The threshold answers this share of MNIST training digits the detector never saw: the goal is 99% of the test
# digits, and the half point more leaves room for the test digits being a little less typical than training ones.
ANSWERED = 0.995
FIT_PER_KIND = 200  # Non-digits of each kind the detector learns from (seed 0); reports use others (seed 1).
REPORT_PER_KIND = 100
DETECTOR_UNITS = 32
DIGITS_FOR_FIT = 5000
DIGITS_FOR_THRESHOLD = 10000
WORDS = "this does not look like the digits I learned"


def hidden_features(model, prepared, batch_size=2048):
    """What the softmax layer reads for each prepared picture: the hidden layer (512 numbers for the tutorial's
    network, 128 for the convnet's dense layer), as an (n, units) NumPy array."""
    inputs = explain.model_inputs(model, prepared)
    rows = []
    for start in range(0, len(inputs), batch_size):
        values = keras.ops.convert_to_tensor(inputs[start:start + batch_size])
        for layer in model.layers[:-1]:
            values = layer(values, training=False)
        rows.append(keras.ops.convert_to_numpy(values))
    return np.concatenate(rows).astype(np.float64)


def _detector_logits(detector, features):
    scaled = (features - detector["mean"]) / detector["scale"]
    hidden = np.maximum(scaled @ detector["kernel1"] + detector["bias1"], 0)
    return hidden @ detector["kernel2"] + detector["bias2"]


def fit_detector(digit_features, other_features, units=DETECTOR_UNITS, epochs=40, seed=0, learning_rate=3e-3, l2=1e-4):
    """A small network, hidden features -> `units` ReLUs -> one score, trained to tell digits (0) from non-digits (1).

    Both kinds count equally however many there are of each (balanced cross-entropy). It is trained with Adam in
    NumPy, so it is the same on every Keras backend and saved as plain arrays.
    """
    features = np.concatenate([digit_features, other_features])
    targets = np.r_[np.zeros(len(digit_features)), np.ones(len(other_features))]
    if not len(digit_features) or not len(other_features):
        raise ValueError("the detector needs both digits and non-digits to learn from")
    weights = np.where(targets == 1, 0.5 / targets.mean(), 0.5 / (1 - targets.mean()))
    rng = np.random.default_rng(seed)
    limit1, limit2 = np.sqrt(6 / (features.shape[1] + units)), np.sqrt(6 / (units + 1))
    detector = {"mean": features.mean(axis=0), "scale": features.std(axis=0) + 1e-3,
                "kernel1": rng.uniform(-limit1, limit1, (features.shape[1], units)), "bias1": np.zeros(units),
                "kernel2": rng.uniform(-limit2, limit2, units), "bias2": np.zeros(())}
    trained = ("kernel1", "bias1", "kernel2", "bias2")
    moments = {name: [np.zeros_like(detector[name]), np.zeros_like(detector[name])] for name in trained}
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(features)), max(1, len(features) // 128)):
            scaled = (features[batch] - detector["mean"]) / detector["scale"]
            before = scaled @ detector["kernel1"] + detector["bias1"]
            hidden = np.maximum(before, 0)
            scores = hidden @ detector["kernel2"] + detector["bias2"]
            # The gradient of the weighted cross-entropy of a sigmoid with respect to its input: w * (p - y).
            error = weights[batch] * (1 / (1 + np.exp(-scores)) - targets[batch]) / len(batch)
            back = np.outer(error, detector["kernel2"]) * (before > 0)
            gradients = {"kernel1": scaled.T @ back + l2 * detector["kernel1"], "bias1": back.sum(axis=0),
                         "kernel2": hidden.T @ error + l2 * detector["kernel2"], "bias2": error.sum()}
            step += 1
            for name in trained:
                first, second = moments[name]
                first[...] = 0.9 * first + 0.1 * gradients[name]
                second[...] = 0.999 * second + 0.001 * gradients[name] ** 2
                detector[name] = detector[name] - learning_rate * (first / (1 - 0.9**step)) / (
                    np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    return detector


def fit_rule(model, data, per_kind=FIT_PER_KIND, seed=0):
    """Fit "when not to answer" for a trained model on MNIST (`data`, an `Mnist`) and firstnet's own non-digits.

    The temperature is fitted on the first half of the test digits (held out from training) and the ECE, before and
    after, measured on the second half. The detector learns from MNIST training digits and `per_kind` drawings of each
    kind in nondigits.KINDS; its threshold answers ANSWERED of other training digits. Returns the rule, a dict that
    `save_rule` stores with the run and `answer` uses.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.x_train))
    if len(order) < 2:
        raise ValueError(f"the data has {len(order)} training digits; learning when not to answer needs at least two")
    # A small set (the offline digits bundled with firstnet hold 5,000) gives half of its digits to each part.
    fit_count = min(DIGITS_FOR_FIT, len(order) // 2)
    fit_digits = data.x_train[order[:fit_count]]
    threshold_digits = data.x_train[order[fit_count:fit_count + DIGITS_FOR_THRESHOLD]]
    others = np.concatenate([nondigits.cached(kind, per_kind, seed) for kind in nondigits.KINDS])
    detector = fit_detector(hidden_features(model, fit_digits), hidden_features(model, others), seed=seed)
    threshold = float(np.quantile(_detector_logits(detector, hidden_features(model, threshold_digits)), ANSWERED))

    half = len(data.x_test) // 2
    test_logits = explain.logits(model, data.x_test)
    temperature = calibration.fit_temperature(test_logits[:half], data.y_test[:half])
    later_logits, later_labels = test_logits[half:], data.y_test[half:]
    facts = {"ece_before": calibration.expected_calibration_error(calibration.softmax(later_logits), later_labels),
             "ece_after": calibration.expected_calibration_error(calibration.softmax(later_logits, temperature), later_labels)}
    return {"temperature": temperature, "threshold": threshold, "detector": detector, "facts": facts}


def save_rule(run_dir, rule):
    """Store the rule beside the run's model as plain arrays (read back without pickle): run/not_a_digit.npz."""
    path = pathlib.Path(run_dir) / RULE_FILE
    arrays = {f"detector_{name}": value for name, value in rule["detector"].items()}
    arrays.update(temperature=rule["temperature"], threshold=rule["threshold"],
                  **{f"fact_{name}": value for name, value in rule.get("facts", {}).items()})
    with files.atomic_path(path) as temporary:
        np.savez(temporary, **arrays)
    return path


def load_rule(run_dir):
    """The rule stored with a run by `save_rule`, or None if the run has none yet."""
    path = pathlib.Path(run_dir) / RULE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        return {"temperature": float(stored["temperature"]), "threshold": float(stored["threshold"]),
                "detector": {name[len("detector_"):]: stored[name] for name in stored.files if name.startswith("detector_")},
                "facts": {name[len("fact_"):]: float(stored[name]) for name in stored.files if name.startswith("fact_")}}


def rule_for_run(run_dir, model, data=None):
    """The run's stored rule; fitted (about a minute the first time, for the drawings) and stored if it has none."""
    rule = load_rule(run_dir)
    if rule is None:
        from firstnet import data as mnist_data

        rule = fit_rule(model, data if data is not None else mnist_data.load_mnist())
        save_rule(run_dir, rule)
    return rule


def answers(model, prepared, rule):
    """`answer` for a batch of prepared pictures: one dict each."""
    if rule is None:
        raise ValueError("no rule for when not to answer: fit one with abstain.fit_rule(model, data), or use "
                         "abstain.rule_for_run(run_dir, model), which stores it with the run")
    prepared = np.asarray(prepared)
    features = hidden_features(model, prepared)
    probabilities = calibration.softmax(explain.logits(model, prepared), rule["temperature"])
    unlike = _detector_logits(rule["detector"], features)
    return [{"digit": int(row.argmax()), "probability": float(row.max()), "probabilities": [float(p) for p in row],
             "not_a_digit": bool(score > rule["threshold"]), "unlike_digits": float(score - rule["threshold"])}
            for row, score in zip(probabilities, unlike)]


def answer(model, prepared, rule):
    """The network's answer for one prepared 28x28 picture, or its honest "not a digit".

    Returns `digit` (the one it would choose, kept even when it abstains), its `probability` after temperature
    scaling, all ten `probabilities`, `not_a_digit` (True when the picture is unlike the digits it learned) and
    `unlike_digits`, the detector's score minus its threshold (above 0: not a digit).
    """
    prepared = np.asarray(prepared)
    if prepared.shape != (28, 28):
        raise ValueError(f"expected one prepared 28x28 picture, got shape {prepared.shape}; use answers() for a batch")
    return answers(model, prepared[None], rule)[0]


def describe(result):
    """An answer in words, as the page and `predict` say it."""
    said = f"{result['digit']} ({result['probability']:.1%})"
    return f"not a digit? {WORDS} (it would have said {said})" if result["not_a_digit"] else said


def report(model, rule, data, per_kind=REPORT_PER_KIND, seed=1, page_count=200):
    """How often the rule abstains on held-out drawings of each kind (seed 1, never used to fit), on all of them,
    and how often it still answers MNIST's test digits and real test digits drawn again on the page's pad."""
    abstained = {kind: float(np.mean([a["not_a_digit"] for a in answers(model, nondigits.cached(kind, per_kind, seed), rule)]))
                 for kind in nondigits.KINDS}
    test = answers(model, data.x_test, rule)
    page = answers(model, nondigits.cached_page_digits(data.x_test[-page_count:]), rule)
    return {"abstained": abstained, "abstained_all": float(np.mean(list(abstained.values()))),
            "mnist_test_answered": float(np.mean([not a["not_a_digit"] for a in test])),
            "page_digits_answered": float(np.mean([not a["not_a_digit"] for a in page])),
            "per_kind": per_kind, **rule.get("facts", {}), "temperature": rule["temperature"]}


def format_report(facts):
    """The report as a few lines of text."""
    kinds = ", ".join(f"{kind} {share:.0%}" for kind, share in facts["abstained"].items())
    return (f"abstains on {facts['abstained_all']:.1%} of held-out non-digits ({facts['per_kind']} of each kind: {kinds})\n"
            f"answers {facts['mnist_test_answered']:.2%} of MNIST's test digits and "
            f"{facts['page_digits_answered']:.1%} of test digits drawn again on the page's pad\n"
            f"temperature {facts['temperature']:.2f}: ECE {facts.get('ece_before', float('nan')):.4f} before, "
            f"{facts.get('ece_after', float('nan')):.4f} after")
