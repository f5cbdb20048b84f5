"""Why this answer: integrated gradients say which pixels pushed the network towards the digit it chose, and which against."""

import io

import keras
import numpy as np
from keras import layers

from firstnet import data as mnist_data, model as firstnet_model

METHOD = ("integrated gradients: the gradient of the digit's score (its logit, before the softmax) averaged along the "
          "straight path from a black page to the picture, times the picture; the pixels' shares add up to the score's "
          "change from the black page")
STEPS = 64  # Points on the path; the shares add up to the score change within about 1% with 64 (tests/test_explain.py).
BATCH = 512


def model_inputs(model, prepared):
    """Prepared 28x28 uint8 pictures (or one) as the model takes them: float32 0..1, flat or with a channel."""
    prepared = np.asarray(prepared)
    if prepared.ndim == 2:
        prepared = prepared[None]
    return mnist_data.prepare_images(prepared, firstnet_model.image_shape(model))


def _is_softmax(activation):
    return getattr(activation, "__name__", "") == "softmax"


def logit_function(model):
    """A function from a backend tensor of model inputs to the model's logits, the scores its softmax turns into
    probabilities; a model without a softmax at its end gives its outputs as they are."""
    body, last = list(model.layers[:-1]), model.layers[-1]
    if isinstance(last, layers.Softmax) or (isinstance(last, layers.Activation) and _is_softmax(last.activation)):
        body, last = body[:-1], body[-1]
        head = last
    elif isinstance(last, layers.Dense) and _is_softmax(last.activation):
        # The softmax is inside the last Dense layer: its kernel and bias without the activation are the logits.
        def head(values):
            return keras.ops.matmul(values, last.kernel) + last.bias
    else:
        head = last

    def logits(inputs):
        values = inputs
        for layer in body:
            values = layer(values, training=False)
        return head(values)

    return logits


def logits(model, prepared, batch_size=2048):
    """The logits of prepared pictures, an (n, classes) NumPy array; softmax of each row is `model.predict`'s row."""
    function = logit_function(model)
    inputs = model_inputs(model, prepared)
    rows = [keras.ops.convert_to_numpy(function(keras.ops.convert_to_tensor(inputs[start:start + batch_size])))
            for start in range(0, len(inputs), batch_size)]
    return np.concatenate(rows).astype(np.float64)


def _jax_gradient(function, inputs):
    import jax

    def total(batch):
        scores = function(batch)
        return scores.sum(), scores

    (_, scores), gradient = jax.value_and_grad(total, has_aux=True)(inputs)
    return scores, gradient


def _torch_gradient(function, inputs):
    import torch

    inputs = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = function(inputs)
        (gradient,) = torch.autograd.grad(scores.sum(), inputs)
    return scores.detach(), gradient


def _tensorflow_gradient(function, inputs):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(inputs)
        scores = function(inputs)
    return scores, tape.gradient(scores, inputs)


# One small function per backend, each through its own public autodiff, as Keras's own trainers do. Each takes a
# function from a batch to one score per picture; the pictures do not interact (inference mode), so the gradient of
# the scores' sum is each picture's own gradient.
GRADIENTS = {"jax": _jax_gradient, "torch": _torch_gradient, "tensorflow": _tensorflow_gradient}


def score_gradients(model, inputs, classes, kind="logit"):
    """Each picture's score and its gradient with respect to the model's inputs, as NumPy arrays.

    `inputs` are model inputs (see `model_inputs`); `classes` the class to score for each row; `kind` "logit" (the
    score before the softmax) or "log_probability" (its log-softmax, which also counts the other digits).
    """
    backend = keras.backend.backend()
    if backend not in GRADIENTS:
        raise ValueError(f"no gradient for the Keras backend {backend!r}; firstnet explains on {', '.join(GRADIENTS)}")
    if kind not in ("logit", "log_probability"):
        raise ValueError(f"unknown score {kind!r}; choose 'logit' or 'log_probability'")
    function = logit_function(model)
    chosen = keras.ops.convert_to_tensor(mnist_data.one_hot(classes, firstnet_model_classes(model)))

    def score(batch):
        values = function(batch)
        if kind == "log_probability":
            values = keras.ops.log_softmax(values, axis=-1)
        return keras.ops.sum(values * chosen, axis=-1)

    scores, gradient = GRADIENTS[backend](score, keras.ops.convert_to_tensor(np.asarray(inputs, dtype="float32")))
    return keras.ops.convert_to_numpy(scores).astype(np.float64), keras.ops.convert_to_numpy(gradient).astype(np.float64)


def firstnet_model_classes(model):
    return int(model.outputs[0].shape[-1])


def integrated_gradients(model, prepared, digit=None, steps=STEPS):
    """Why the model gave its answer for one prepared 28x28 picture (uint8, 0..255, as `images.prepare_image` makes it).

    Returns a dict: `digit` explained (the model's answer unless given) and its `probability`; `attributions`, a
    28x28 array of each pixel's share of the score, positive where the ink pushed towards the digit, negative where
    it pushed against; `score` and `baseline_score`, the logit of the picture and of a black page; `gap`, how far
    the shares' sum misses their difference (a check: it shrinks as `steps` grows); `method`, METHOD in words.
    """
    prepared = np.asarray(prepared)
    if prepared.shape != (mnist_data.IMAGE_SIZE, mnist_data.IMAGE_SIZE):
        raise ValueError(f"expected one prepared 28x28 picture, got an array of shape {prepared.shape}; "
                         "prepare a drawing with images.prepare_image first")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    picture = model_inputs(model, prepared)
    probabilities = np.asarray(model.predict(picture, verbose=0))[0]
    digit = int(probabilities.argmax()) if digit is None else int(digit)
    if not 0 <= digit < len(probabilities):
        raise ValueError(f"digit must be one of the model's classes 0..{len(probabilities) - 1}, got {digit}")
    # The midpoints of `steps` equal pieces of the path from black (0) to the picture: a Riemann sum of the gradient.
    fractions = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    path = fractions.reshape((-1,) + (1,) * (picture.ndim - 1)) * picture
    gradients = np.concatenate([score_gradients(model, path[start:start + BATCH], [digit] * len(path[start:start + BATCH]))[1]
                                for start in range(0, steps, BATCH)])
    attributions = (gradients.mean(axis=0) * picture[0]).reshape(prepared.shape)
    ends = logits(model, np.stack([np.zeros_like(prepared), prepared]))[:, digit]
    return {"digit": digit, "probability": float(probabilities[digit]), "attributions": attributions,
            "score": float(ends[1]), "baseline_score": float(ends[0]),
            "gap": float(attributions.sum() - (ends[1] - ends[0])), "method": METHOD}


def explain(model, prepared, digit=None, steps=STEPS):
    """The library's entry point for "why this answer": `integrated_gradients` (see there)."""
    return integrated_gradients(model, prepared, digit=digit, steps=steps)


def gradient_times_input(model, prepared, digit):
    """Each pixel's gradient times its value, for one prepared picture: the first-order guess of its share."""
    picture = model_inputs(model, prepared)
    gradient = score_gradients(model, picture, [digit])[1]
    return (gradient[0] * picture[0]).reshape(np.shape(prepared))


def occlusion(model, prepared, digit):
    """How much the digit's logit falls when each pixel alone is made black: a share measured with no gradient."""
    prepared = np.asarray(prepared)
    covered = np.repeat(prepared[None], prepared.size, axis=0).reshape(prepared.size, -1)
    covered[np.arange(prepared.size), np.arange(prepared.size)] = 0
    scores = logits(model, np.concatenate([prepared[None], covered.reshape((-1,) + prepared.shape)]))[:, digit]
    return (scores[0] - scores[1:]).reshape(prepared.shape)


def overlay(prepared, attributions):
    """The attributions as an RGB picture over the drawing: red pixels pushed towards the digit, blue against.

    The drawing stays visible in grey underneath; colour strength is the share, scaled to the largest one.
    """
    prepared, attributions = np.asarray(prepared, dtype=np.float64), np.asarray(attributions, dtype=np.float64)
    largest = max(np.abs(attributions).max(), 1e-12)
    strength = np.clip(attributions / largest, -1, 1)[..., None]
    grey = np.repeat((0.25 * prepared / 255)[..., None], 3, axis=-1)
    towards, against = np.array([1.0, 0.15, 0.1]), np.array([0.1, 0.45, 1.0])
    rgb = grey + np.clip(strength, 0, None) * towards + np.clip(-strength, 0, None) * against
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def explanation_figure(prepared, explanation):
    """The drawing beside its attributions (red towards the digit, blue against), titled with the answer and METHOD."""
    from firstnet import plots

    plt = plots._pyplot()
    figure, (drawing_axes, why_axes) = plt.subplots(1, 2, figsize=(8, 4.4))
    drawing_axes.imshow(prepared, cmap=plt.cm.binary, vmin=0, vmax=255)
    drawing_axes.set_title("the picture, as the network sees it")
    largest = max(float(np.abs(explanation["attributions"]).max()), 1e-12)
    shown = why_axes.imshow(explanation["attributions"], cmap="coolwarm", vmin=-largest, vmax=largest)
    why_axes.contour(np.asarray(prepared), levels=[127], colors="black", linewidths=0.6)
    why_axes.set_title(f"why {explanation['digit']} ({explanation['probability']:.1%}): red for, blue against")
    figure.colorbar(shown, ax=why_axes, fraction=0.046, label="share of the score")
    for axes in (drawing_axes, why_axes):
        axes.set_xticks([])
        axes.set_yticks([])
    figure.text(0.5, 0.02, "integrated gradients from a black page; the shares add up to the score's change",
                ha="center", fontsize=8)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    return figure


def figure_png(figure, dpi=110):
    """A matplotlib figure as PNG bytes (for the page and `--out`), closed afterwards."""
    from firstnet import plots

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plots._pyplot().close(figure)
    return buffer.getvalue()


def explanation_png(prepared, explanation):
    """`explanation_figure` as PNG bytes."""
    return figure_png(explanation_figure(prepared, explanation))
