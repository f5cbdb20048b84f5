"""Fool it: the smallest change to a digit the network reads right that makes it read another digit, found by gradient steps."""

import numpy as np

from firstnet import data as mnist_data, explain

# Bounds on the change of any one pixel, in the pixel units 0..255, tried together: the smallest that fools the
# network is then narrowed down pixel level by pixel level.
BOUNDS = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192)
STEPS = 40
METHOD = ("projected gradient steps on the log-probability of the target digit, each pixel changed by at most the bound "
          "(an L-infinity ball), the smallest bound that works")


def _attack(model, original, target, bounds, steps):
    """Targeted projected gradient ascent from `original` (model inputs, 0..1) for each bound at once; uint8 results."""
    bounds = np.asarray(bounds, dtype=np.float32)
    shape = (-1,) + (1,) * (original.ndim - 1)
    epsilon = (bounds / 255).reshape(shape)
    low, high = np.clip(original - epsilon, 0, 1), np.clip(original + epsilon, 0, 1)
    pictures = np.repeat(original, len(bounds), axis=0)
    for _ in range(steps):
        gradient = explain.score_gradients(model, pictures, [target] * len(bounds), kind="log_probability")[1]
        # A step of a quarter of the bound along the gradient's sign moves every pixel at once, as far as allowed.
        pictures = np.clip(pictures + epsilon / 4 * np.sign(gradient), low, high).astype(np.float32)
    # Whole pixel levels, as a picture is stored; the original is whole and each bound too, so they stay within it.
    return np.clip(np.round(pictures * 255), 0, 255).astype(np.uint8).reshape((len(bounds), 28, 28))


def fool(model, prepared, target, label=None, bounds=BOUNDS, steps=STEPS, min_probability=None):
    """Change a prepared 28x28 digit as little as needed (per pixel) for `model` to read it as `target`.

    `label`, when given, is the digit's true label: it must be what the network reads, or there is nothing to fool.
    `min_probability`, when given, asks for more than the wrong digit only just winning: the smallest bound whose
    fooled picture the network reads as `target` with at least that probability (0.9: sure of the wrong answer).
    Returns a dict: `original` and `fooled` (28x28 uint8), `difference` (fooled - original, int16), `bound` (the
    largest change allowed per pixel), `linf` and `l2` (the change's sizes, pixel units 0..255), `read` and
    `read_probability` (the original's answer), `target`, `probability` (the network's for the target on the fooled
    picture), `probabilities`, `fooled_it` (False if even the largest bound did not work), `min_probability` and
    `method`.
    """
    original_picture = np.asarray(prepared)
    if original_picture.shape != (mnist_data.IMAGE_SIZE, mnist_data.IMAGE_SIZE):
        raise ValueError(f"expected one prepared 28x28 picture, got shape {original_picture.shape}")
    original_picture = original_picture.astype(np.uint8)
    original = explain.model_inputs(model, original_picture)
    before = np.asarray(model.predict(original, verbose=0))[0]
    read, target = int(before.argmax()), int(target)
    if not 0 <= target < len(before):
        raise ValueError(f"target must be a digit 0..{len(before) - 1}, got {target}")
    if label is not None and int(label) != read:
        raise ValueError(f"the network reads this picture as {read}, not its label {int(label)}: choose a digit it reads "
                         "right (fooling it is only interesting when it was right)")
    if target == read:
        raise ValueError(f"the network already reads this picture as {target}: choose another target digit")
    least = 0.0 if min_probability is None else float(min_probability)
    if not 0 <= least < 1:
        raise ValueError(f"min_probability must be at least 0 and below 1, like 0.9, got {min_probability}")
    fooled, bound = _smallest(model, original, target, sorted({int(b) for b in bounds}), steps, least)
    probabilities = np.asarray(model.predict(explain.model_inputs(model, fooled), verbose=0))[0]
    difference = fooled.astype(np.int16) - original_picture
    return {"original": original_picture, "fooled": fooled, "difference": difference, "bound": bound,
            "linf": int(np.abs(difference).max()), "l2": float(np.sqrt((difference.astype(np.float64) ** 2).sum())),
            "read": read, "read_probability": float(before[read]), "target": target,
            "probability": float(probabilities[target]), "probabilities": [float(p) for p in probabilities],
            "fooled_it": int(probabilities.argmax()) == target and float(probabilities[target]) >= least,
            "min_probability": least, "method": METHOD}


def _smallest(model, original, target, bounds, steps, least=0.0):
    """The fooled picture for the smallest bound that works (read as `target`, with at least `least` probability):
    the listed bounds first, then every level between the last that failed and the first that worked."""
    if not bounds or bounds[0] < 1 or bounds[-1] > 255:
        raise ValueError(f"bounds must be whole pixel levels 1..255, got {bounds}")
    results = _attack(model, original, target, bounds, steps)
    worked = _works(model, results, target, least)
    if not worked.any():
        return results[-1], bounds[-1]
    first = int(np.argmax(worked))
    between = list(range((bounds[first - 1] if first else 0) + 1, bounds[first]))
    if between:
        narrower = _attack(model, original, target, between, steps)
        narrower_worked = _works(model, narrower, target, least)
        if narrower_worked.any():
            which = int(np.argmax(narrower_worked))
            return narrower[which], between[which]
    return results[first], bounds[first]


def _works(model, pictures, target, least):
    """Which pictures the network reads as `target`, with at least `least` probability for it."""
    probabilities = np.asarray(model.predict(explain.model_inputs(model, pictures), verbose=0))
    return (probabilities.argmax(axis=1) == target) & (probabilities[:, target] >= least)


def fool_figure(result):
    """The digit, the fooled picture and the change magnified, side by side, with the sizes and probabilities."""
    from firstnet import plots

    plt = plots._pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(10, 3.9))
    axes[0].imshow(result["original"], cmap=plt.cm.binary, vmin=0, vmax=255)
    axes[0].set_title(f"read as {result['read']} ({result['read_probability']:.1%})")
    axes[1].imshow(result["fooled"], cmap=plt.cm.binary, vmin=0, vmax=255)
    verdict = "read as" if int(np.argmax(result["probabilities"])) == result["target"] else "still not read as"
    axes[1].set_title(f"{verdict} {result['target']} ({result['probability']:.1%})")
    largest = max(result["linf"], 1)
    shown = axes[2].imshow(result["difference"], cmap="coolwarm", vmin=-largest, vmax=largest)
    axes[2].set_title(f"the change, magnified {255 / largest:.0f}x")
    figure.colorbar(shown, ax=axes[2], fraction=0.046, label="pixel change (of 0..255)")
    for each in axes:
        each.set_xticks([])
        each.set_yticks([])
    figure.text(0.5, 0.03, f"each pixel changed by at most {result['linf']} of 255; L2 size {result['l2']:.0f}",
                ha="center", fontsize=9)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def fool_png(result):
    """`fool_figure` as PNG bytes."""
    return explain.figure_png(fool_figure(result))
