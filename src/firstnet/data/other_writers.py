"""Other writers: real digits redrawn as other hands might write them, to make a class collection from MNIST itself."""

import numpy as np
from PIL import Image


def shifted_digits(images, labels, count=1000, seed=0, writers=8):
    """Real digits redrawn as other writers might: thicker or thinner strokes, slanted, shifted off centre.

    Deterministic for a seed: each digit is given to one of `writers` writers, and each writer has a style of their
    own (stroke width, slant, shift, a little turn). Returns (images, labels) of `count` digits, 28x28 uint8 like
    MNIST's, as a collection holds them. Used to make a collection from real digits for the lesson and the tests.
    """
    shuffling = np.random.default_rng(seed)
    chosen = shuffling.choice(len(images), size=min(count, len(images)), replace=False)
    styles = [{"stroke": int(shuffling.integers(-1, 3)), "slant": float(shuffling.uniform(-0.4, 0.4)),
               "shift": (int(shuffling.integers(-3, 4)), int(shuffling.integers(-3, 4))),
               "turn": float(shuffling.uniform(-12, 12))} for _ in range(writers)]
    made = np.empty((len(chosen), 28, 28), dtype=np.uint8)
    for row, index in enumerate(chosen):
        style = styles[row % writers]
        picture = _stroke(np.asarray(images[index], dtype=np.uint8), style["stroke"])
        drawn = Image.fromarray(picture).rotate(style["turn"], resample=Image.Resampling.BILINEAR, center=(14, 14))
        dx, dy = style["shift"]
        # An affine map from output to input pixels: x_in = x + slant * (y - 14) - dx, y_in = y - dy.
        drawn = drawn.transform((28, 28), Image.Transform.AFFINE,
                                (1.0, style["slant"], -14 * style["slant"] - dx, 0.0, 1.0, -dy),
                                resample=Image.Resampling.BILINEAR)
        made[row] = np.asarray(drawn, dtype=np.uint8)
    return made, np.asarray(labels)[chosen].astype(np.uint8)


def _stroke(picture, change):
    """Strokes made thicker (change > 0, a 3x3 maximum per step) or thinner (change < 0, a cross-shaped minimum)."""
    for _ in range(abs(change)):
        padded = np.pad(picture, 1)
        shifted = [padded[1 + dy:29 + dy, 1 + dx:29 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if change > 0 or dx == 0 or dy == 0]
        picture = np.max(shifted, axis=0) if change > 0 else np.min(shifted, axis=0)
    return picture
