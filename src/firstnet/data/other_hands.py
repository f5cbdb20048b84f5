"""Digits by hands MNIST never saw, made here and scanned onto paper: to measure whether a model reads handwriting.

MNIST's test digits come from the same kind of writers as its training digits, so its test accuracy says little
about a learner's own hand. Three honest sets are built here, none of them from MNIST's training digits, each
drawn as dark ink on uneven paper and prepared by `images.prepare_image`, exactly as `firstnet predict` prepares
a photo:

- "pen": digits drawn with a pen from stroke outlines of a few common ways to write each digit (a 7 with or
  without its bar, a 4 open or closed, a 1 with a flag or a plain line), by writers who each have a slant, a pen
  width, a size, a width and a shaky hand of their own;
- "typed": the digits of Pillow's own font, slanted, heavier or lighter, turned a little;
- "redrawn": MNIST's *test* digits redrawn by writers with other habits (data/other_writers.py), then scanned.

Everything is drawn from `seed` with NumPy and Pillow only, so the sets are the same on every machine.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from firstnet.data.other_writers import shifted_digits
from firstnet.images import prepare_image

PARTS = ("pen", "typed", "redrawn")
# The side of the page a digit is drawn on before it is prepared, in pixels: a small phone photo's crop.
PAGE = 112


def _arc(cx, cy, rx, ry, start, end, points=14):
    """Points along an elliptical arc; angles in degrees, 0 to the right, 90 downwards (image coordinates)."""
    angles = np.radians(np.linspace(start, end, points))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# Ways of writing each digit, as strokes (lists of points) in a box from (0, 0), top left, to (1, 1).
WAYS = {
    0: [[_arc(0.5, 0.5, 0.4, 0.48, -90, 275, 24)]],
    1: [[[(0.5, 0.0), (0.5, 1.0)]],
        [[(0.25, 0.25), (0.55, 0.0), (0.55, 1.0)]],
        [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)], [(0.3, 1.0), (0.8, 1.0)]]],
    2: [[_arc(0.5, 0.3, 0.38, 0.3, 190, 370) + [(0.1, 1.0), (0.92, 1.0)]],
        [_arc(0.5, 0.3, 0.38, 0.3, 200, 380) + [(0.15, 0.95)] + _arc(0.3, 0.9, 0.12, 0.1, 270, 90, 8)[-3:]
         + [(0.95, 0.98)]]],
    3: [[_arc(0.48, 0.26, 0.36, 0.26, 200, 450) + _arc(0.48, 0.74, 0.4, 0.26, 270, 520)],
        [[(0.1, 0.0), (0.85, 0.0), (0.4, 0.42)] + _arc(0.48, 0.7, 0.4, 0.3, 270, 520)]],
    4: [[[(0.65, 0.0), (0.05, 0.68), (0.95, 0.68)], [(0.7, 0.3), (0.7, 1.0)]],
        [[(0.15, 0.0), (0.12, 0.6), (0.9, 0.6)], [(0.75, 0.0), (0.75, 1.0)]]],
    5: [[[(0.85, 0.0), (0.2, 0.0), (0.15, 0.45)] + _arc(0.48, 0.68, 0.4, 0.32, 225, 505)],
        [[(0.2, 0.0), (0.15, 0.45)] + _arc(0.48, 0.68, 0.4, 0.32, 225, 505), [(0.2, 0.0), (0.85, 0.0)]]],
    6: [[[(0.75, 0.0)] + _arc(0.75, 0.62, 0.6, 0.62, 270, 180, 10)[1:] + _arc(0.5, 0.7, 0.36, 0.3, 180, 540, 20)]],
    7: [[[(0.05, 0.0), (0.95, 0.0), (0.35, 1.0)]],
        [[(0.05, 0.0), (0.95, 0.0), (0.4, 1.0)], [(0.3, 0.5), (0.85, 0.5)]],
        [[(0.05, 0.15), (0.1, 0.0), (0.95, 0.0), (0.5, 0.55), (0.45, 1.0)]]],
    8: [[_arc(0.5, 0.25, 0.3, 0.25, 90, 450, 20) + _arc(0.5, 0.74, 0.38, 0.26, -90, 270, 20)],
        [_arc(0.5, 0.25, 0.32, 0.25, 0, 360, 20), _arc(0.5, 0.74, 0.38, 0.26, 0, 360, 20)]],
    9: [[_arc(0.48, 0.3, 0.36, 0.3, 0, 365, 20) + [(0.84, 0.3), (0.8, 1.0)]],
        [_arc(0.48, 0.3, 0.36, 0.3, 0, 365, 20) + [(0.84, 0.3)] + _arc(0.5, 0.65, 0.34, 0.35, 0, 100, 8)]],
}


def pen_digits(count, seed=0, writers=40):
    """`count` digits drawn with a pen by `writers` writers, each with a hand of their own; (pictures, labels)."""
    generator = np.random.default_rng(seed)
    hands = [{"slant": generator.uniform(-0.35, 0.35), "pen": generator.uniform(0.05, 0.13),
              "width": generator.uniform(0.5, 0.85), "shake": generator.uniform(0.0, 0.04),
              "way": int(generator.integers(0, 1 << 16))} for _ in range(writers)]
    labels = np.arange(count) % 10
    pictures = []
    for index, label in enumerate(labels):
        hand = hands[index % writers]
        ways = WAYS[int(label)]
        strokes = ways[(hand["way"] + index // (10 * writers)) % len(ways)]
        height = generator.uniform(0.6, 0.8) * PAGE
        width = height * hand["width"]
        turn = np.radians(generator.uniform(-8, 8))
        page = Image.new("L", (PAGE, PAGE), 0)
        draw = ImageDraw.Draw(page)
        pen = max(2, round(hand["pen"] * height))
        for stroke in strokes:
            points = []
            for x, y in stroke:
                x, y = x + generator.normal(0, hand["shake"]), y + generator.normal(0, hand["shake"])
                # Slant (the top leans right for a positive slant), then a little turn around the centre.
                x, y = (x - 0.5) * width + hand["slant"] * (0.5 - y) * height, (y - 0.5) * height
                x, y = x * np.cos(turn) - y * np.sin(turn), x * np.sin(turn) + y * np.cos(turn)
                points.append((PAGE / 2 + x, PAGE / 2 + y))
            draw.line(points, fill=255, width=pen, joint="curve")
            for x, y in (points[0], points[-1]):
                draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
        pictures.append(np.asarray(page))
    return pictures, labels.astype(np.uint8)


def typed_digits(count, seed=0):
    """`count` digits in Pillow's own font (no system font needed), slanted, heavier or lighter, turned a little."""
    generator = np.random.default_rng(seed)
    font = ImageFont.load_default(size=72)
    labels = np.arange(count) % 10
    pictures = []
    for label in labels:
        page = Image.new("L", (PAGE, PAGE), 0)
        ImageDraw.Draw(page).text((PAGE / 2, PAGE / 2), str(int(label)), fill=255, font=font, anchor="mm",
                                  stroke_width=int(generator.integers(0, 4)), stroke_fill=255)
        slant = generator.uniform(-0.3, 0.3)
        page = page.transform(page.size, Image.Transform.AFFINE, (1.0, slant, -slant * PAGE / 2, 0.0, 1.0, 0.0),
                              resample=Image.Resampling.BILINEAR)
        pictures.append(np.asarray(page.rotate(generator.uniform(-8, 8), resample=Image.Resampling.BILINEAR)))
    return pictures, labels.astype(np.uint8)


def redrawn_digits(test_images, test_labels, count, seed=0):
    """`count` of MNIST's test digits redrawn by other writers, enlarged to a page as a scan would show them."""
    images, labels = shifted_digits(test_images, test_labels, count=2 * count, seed=seed, writers=24)
    # A thin digit made thinner still can all but vanish: no one could read it, so it is not a fair question.
    legible = (images >= 128).sum(axis=(1, 2)) >= 20
    images, labels = images[legible][:count], labels[legible][:count]
    return [np.asarray(Image.fromarray(image).resize((PAGE, PAGE), Image.Resampling.BICUBIC)) for image in images], labels


def scan(ink, generator):
    """Light ink (0..255) as a scan or a photo shows it: dark ink on paper lit unevenly, blurred a little, grainy."""
    rows, columns = np.mgrid[0:PAGE, 0:PAGE] / PAGE
    paper = generator.uniform(170, 245) + generator.uniform(-25, 25) * rows + generator.uniform(-25, 25) * columns
    dark = generator.uniform(10, 80)
    blurred = np.asarray(Image.fromarray(ink).filter(ImageFilter.GaussianBlur(generator.uniform(0.3, 1.2))),
                         dtype=np.float64) / 255
    picture = paper * (1 - blurred) + dark * blurred + generator.normal(0, generator.uniform(1, 6), ink.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def other_hands(test_images, test_labels, count=500, seed=0):
    """The three sets of `count` digits each, scanned and prepared: {part: (28x28 uint8 digits, labels)}.

    `test_images` and `test_labels` are MNIST's test digits (for the "redrawn" part); its training digits are
    never used, so a model trained on them has seen none of these hands.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    made = {"pen": pen_digits(count, seed), "typed": typed_digits(count, seed + 1),
            "redrawn": redrawn_digits(test_images, test_labels, count, seed + 2)}
    scanning = np.random.default_rng(seed + 3)
    return {part: (np.stack([prepare_image(scan(ink, scanning)) for ink in inks]), labels)
            for part, (inks, labels) in made.items()}
