"""Augmentation: layers that redraw each training picture as another hand might have drawn it, a little differently
every time it is seen.

MNIST's writers share one kind of pen: a network that has only seen their strokes reads a heavier or a finer hand
worse (benchmarks/OTHER_HANDS.md measures it on digits by hands MNIST never saw). The layers sit at the front of the
network and work only in training; in prediction they pass the picture through unchanged, so a saved model reads a
picture exactly as the same weights without them would. Two kinds (`firstnet train --augment KIND`):

- "stroke", the convnet's recipe: strokes heavier or lighter (RandomStroke, made of Keras's own max pooling);
- "all": that, then a turn, a slant, a size and a place, in one resampling (RandomHand, through Keras's own
  `ops.image.affine_transform`); Keras's RandomRotation, RandomShear, RandomZoom and RandomTranslation do the same
  in four resamplings ("keras", kept to measure against).
"""

import math

import keras
from keras import layers, ops

# How far each change may go. Prepared photos (images.prepare_image) are centred and fitted to MNIST's 20x20 box,
# so what remains to learn is mostly turn, slant and stroke; shift and zoom stay small to keep digits in the field.
ROTATION = 12 / 360  # A turn of up to 12 degrees either way, as a fraction of a full turn (RandomRotation's unit).
SHEAR = 0.25  # A slant of up to a quarter of the height.
SHIFT = 2 / 28  # Up to 2 pixels in each direction.
ZOOM = 0.1  # Up to 10% larger or smaller.
HEAVIER = 1.0  # Strokes up to a pixel wider on each side (one 3x3 maximum).
LIGHTER = 0.5  # Or thinner, up to half way to a 3x3 minimum.


@keras.saving.register_keras_serializable(package="firstnet")
class RandomStroke(layers.Layer):
    """Strokes made heavier or lighter at random in training, by a random amount for each picture.

    An amount drawn evenly from -`lighter` to `heavier`: 1 is one 3x3 maximum over the picture (every stroke a
    pixel wider on each side), 2 two of them, fractions blend between; below 0 a blend towards the 3x3 minimum
    (thinner; at most half of it, so a thin stroke fades rather than vanishes). Keras has no such layer; it is
    built from Keras's own max pooling and random numbers, so it runs on every backend. Outside training it changes
    nothing.
    """

    def __init__(self, heavier=HEAVIER, lighter=LIGHTER, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= heavier <= 2:
            raise ValueError(f"heavier must be between 0 and 2 (3x3 maxima), got {heavier}")
        if not 0 <= lighter <= 0.5:
            raise ValueError(f"lighter must be between 0 and 0.5 (of a 3x3 minimum), got {lighter}")
        self.heavier, self.lighter, self.seed = float(heavier), float(lighter), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        once = ops.max_pool(images, pool_size=3, strides=1, padding="same")
        twice = ops.max_pool(images, pool_size=5, strides=1, padding="same")  # Two 3x3 maxima are one 5x5.
        thinner = -ops.max_pool(-images, pool_size=3, strides=1, padding="same")
        amount = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), -self.lighter, self.heavier,
                                      seed=self.seed_generator)
        heavier = ops.where(amount > 1, once + (amount - 1) * (twice - once), images + amount * (once - images))
        return ops.where(amount > 0, heavier, images + amount * (images - thinner))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "heavier": self.heavier, "lighter": self.lighter, "seed": self.seed}


@keras.saving.register_keras_serializable(package="firstnet")
class RandomHand(layers.Layer):
    """Each picture turned, slanted, resized and moved at random in training, in one resampling.

    It does what Keras's RandomRotation, RandomShear, RandomZoom and RandomTranslation do one after another, but
    as one affine map through Keras's own `ops.image.affine_transform`: each of those layers resamples the picture,
    and four resamplings blur a 28x28 digit and cost four times as much (benchmarks/CONVNET.md). Outside training
    it changes nothing.
    """

    def __init__(self, rotation=ROTATION, shear=SHEAR, zoom=ZOOM, shift=SHIFT, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("rotation", rotation), ("shear", shear), ("zoom", zoom), ("shift", shift)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be at least 0 and below 1, got {value}")
        self.rotation, self.shear, self.zoom, self.shift, self.seed = (float(rotation), float(shear), float(zoom),
                                                                       float(shift), seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        count, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]

        def draw(limit):
            return keras.random.uniform((count,), -limit, limit, seed=self.seed_generator)

        # The map from each output pixel back to the input pixel it shows: the inverse of turn, slant and size.
        # Drawn directly, as the changes are drawn evenly either way, their inverses are drawn alike.
        transform = hand_map(draw(self.rotation * 2 * math.pi), draw(self.shear), 1 + draw(self.zoom),
                             draw(self.shift) * width, draw(self.shift) * height, height, width)
        return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                                          data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shear": self.shear, "zoom": self.zoom,
                "shift": self.shift, "seed": self.seed}


def hand_map(angle, slant, size, shift_x, shift_y, height, width):
    """The 8 numbers of `ops.image.affine_transform` (one row per picture) that show each picture turned by `angle`
    radians and slanted by `slant` about its centre, `size` times smaller, moved by -`shift_x`, -`shift_y` pixels.

    Each is a map from an output pixel (x, y) to the input point (a0 x + a1 y + a2, b0 x + b1 y + b2) it shows, as
    Pillow's AFFINE transform also takes it: [[cos, -sin], [sin, cos]] @ [[1, slant], [0, 1]] / size, about the centre.
    """
    cosine, sine = ops.cos(angle) / size, ops.sin(angle) / size
    a0, a1, b0, b1 = cosine, cosine * slant - sine, sine, sine * slant + cosine
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a2 = centre_x - a0 * centre_x - a1 * centre_y - shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y - shift_y
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augmentation_layers(kind="stroke"):
    """The layers of one kind of augmentation, in the order they redraw a digit (strokes first).

    "stroke": strokes heavier or lighter (RandomStroke). "all": that, then a turn, slant, size and place in one
    resampling (RandomHand). "keras": that, with Keras's four layers one after another instead of RandomHand,
    kept to measure one against the other (benchmarks/OTHER_HANDS.md).
    """
    stroke = [RandomStroke(HEAVIER, LIGHTER, name="augment_stroke")]
    if kind == "stroke":
        return stroke
    if kind == "all":
        return stroke + [RandomHand(ROTATION, SHEAR, ZOOM, SHIFT, name="augment_hand")]
    if kind == "keras":
        return stroke + [layers.RandomRotation(ROTATION, fill_mode="constant", name="augment_turn"),
                         layers.RandomShear(x_factor=SHEAR, fill_mode="constant", name="augment_slant"),
                         layers.RandomZoom(ZOOM, fill_mode="constant", name="augment_size"),
                         layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant", name="augment_place")]
    raise ValueError(f"unknown kind of augmentation {kind!r}; choose stroke, all or keras")


def with_augmentation(network, input_shape, kind="stroke"):
    """`network` (a Sequential) with `kind`'s augmentation layers in front: one Sequential, named as `network` is.

    A dense network takes flat rows: they are laid out as pictures for the layers and flattened again after.
    """
    input_layer_shape = tuple(network.inputs[0].shape[1:])
    picture = (*input_shape, 1) if len(input_shape) == 2 else tuple(input_shape)
    flat = len(input_layer_shape) == 1
    front = ([layers.Reshape(picture, name="as_picture")] if flat else []) + augmentation_layers(kind) + (
        [layers.Reshape(input_layer_shape, name="as_row")] if flat else [])
    return keras.Sequential([keras.Input(shape=input_layer_shape, name=network.inputs[0].name), *front,
                             *network.layers], name=network.name)


def is_augmented(model):
    """True if the model starts with augmentation layers (trained with `augment`)."""
    return any(layer.name.startswith("augment_") for layer in model.layers)
