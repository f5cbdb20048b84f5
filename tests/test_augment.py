"""augment.py: the layers that redraw training digits, checked against Pillow, and inert outside training."""

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

from firstnet import augment, train
from firstnet import model as firstnet_model
from firstnet.errors import UserError


def pillow_redrawn(picture, angle, slant, size, shift_x, shift_y):
    """The same redrawing computed by Pillow: its AFFINE transform also maps output pixels to input points, but its
    pixel centres lie at x + 0.5, so the centre of a 28-pixel side is 14 there and 13.5 in Keras's coordinates."""
    cosine, sine = np.cos(angle) / size, np.sin(angle) / size
    a0, a1, b0, b1 = cosine, cosine * slant - sine, sine, sine * slant + cosine
    centre = picture.shape[0] / 2
    data = (a0, a1, centre - a0 * centre - a1 * centre - shift_x, b0, b1, centre - b0 * centre - b1 * centre - shift_y)
    return np.asarray(Image.fromarray(picture.astype(np.float32)).transform(
        picture.shape[::-1], Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR))


@pytest.mark.parametrize("angle, slant, size, shift_x, shift_y", [
    (0.2, 0.0, 1.0, 0.0, 0.0), (-0.15, 0.25, 1.0, 0.0, 0.0), (0.0, 0.0, 1.1, 1.5, -2.0), (0.1, -0.2, 0.9, -1.0, 1.0)])
def test_one_map_redraws_a_digit_as_pillow_does(mnist, angle, slant, size, shift_x, shift_y):
    picture = mnist.x_train[7].astype(np.float32)
    transform = augment.hand_map(np.array([angle]), np.array([slant]), np.array([size]), np.array([shift_x]),
                                 np.array([shift_y]), 28, 28)
    redrawn = ops.convert_to_numpy(ops.image.affine_transform(picture[None, :, :, None], transform, interpolation="bilinear",
                                                    fill_mode="constant", data_format="channels_last"))[0, :, :, 0]
    expected = pillow_redrawn(picture, angle, slant, size, shift_x, shift_y)
    assert np.abs(redrawn - picture).max() > 50  # It did move the digit.
    # Bilinear both; they may differ by a fraction of a grey level where a stroke meets the border.
    assert np.abs(redrawn - expected)[2:-2, 2:-2].max() < 2.0


def test_a_pure_turn_is_what_keras_random_rotation_can_draw(mnist):
    """A turn from the one map equals Keras's own RandomRotation given the same angle, pixel for pixel."""
    picture = mnist.x_train[3][None, :, :, None].astype(np.float32) / 255
    rotation = keras.layers.RandomRotation((0.03, 0.03), fill_mode="constant", interpolation="bilinear")
    by_keras = ops.convert_to_numpy(rotation(picture, training=True))
    # RandomRotation's factor is a fraction of a full turn; its map is the same as the one map's for that angle.
    turn = 0.03 * 2 * np.pi
    transform = augment.hand_map(np.array([turn]), np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), 28, 28)
    by_map = ops.convert_to_numpy(ops.image.affine_transform(picture, transform, fill_mode="constant"))
    assert np.abs(by_keras - picture).max() > 0.2
    assert np.allclose(by_map, by_keras, atol=1e-5)


def test_stroke_is_heavier_or_lighter_and_never_leaves_0_to_1(mnist):
    pictures = mnist.x_train[:256, :, :, None].astype(np.float32) / 255
    stroke = augment.RandomStroke(heavier=2.0, lighter=0.5, seed=1)
    changed = keras.ops.convert_to_numpy(stroke(pictures, training=True))
    assert changed.min() >= 0 and changed.max() <= 1 + 1e-6
    ink = changed.sum(axis=(1, 2, 3)) - pictures.sum(axis=(1, 2, 3))
    # Both ways, at random: amounts drawn evenly from -0.5 to 2, so about a fifth lighter (51 of 256 expected).
    assert (ink > 1).sum() >= 150 and (ink < -1).sum() >= 20
    assert (ink > 50).sum() >= 5  # Two 3x3 maxima make some digits far heavier.
    with pytest.raises(ValueError, match="heavier must be between 0 and 2"):
        augment.RandomStroke(heavier=3)


@pytest.mark.parametrize("family", ["dense", "convnet"])
def test_augmentation_changes_training_pictures_only(family, mnist, tmp_path):
    """Outside training the augmented network computes exactly what the plain one does with the same weights; in
    training the same picture gives other outputs; saved and loaded safely, it still does."""
    keras.utils.set_random_seed(0)
    plain = firstnet_model.build_model(family)
    augmented = firstnet_model.build_model(family, augment="all")
    assert augment.is_augmented(augmented) and not augment.is_augmented(plain)
    augmented.set_weights(plain.get_weights())
    shape = firstnet_model.image_shape(plain)
    pictures = (mnist.x_test[:32].astype(np.float32) / 255).reshape((32, *shape))
    assert np.array_equal(augmented.predict(pictures, verbose=0), plain.predict(pictures, verbose=0))
    firstnet_model.compile_model(augmented)
    augmented.save(tmp_path / "model.keras")
    reloaded = firstnet_model.load_model(tmp_path / "model.keras")
    assert augment.is_augmented(reloaded)
    assert np.array_equal(reloaded.predict(pictures, verbose=0), plain.predict(pictures, verbose=0))
    # Why it answered (explain.py walks the layers one by one) is the plain network's too.
    from firstnet import explain

    why, plain_why = explain.explain(augmented, mnist.x_test[0], steps=8), explain.explain(plain, mnist.x_test[0], steps=8)
    assert np.allclose(why["attributions"], plain_why["attributions"], atol=1e-6)
    # Last, as a call in training mode also moves batch normalization's running statistics.
    assert not np.allclose(keras.ops.convert_to_numpy(augmented(pictures, training=True)),
                           keras.ops.convert_to_numpy(plain(pictures, training=True)), atol=1e-3)


@pytest.mark.slow
def test_a_run_with_augment_trains_reads_and_says_so(mnist, tmp_path):
    """`train --augment all` on a small set, through the default loop: it learns, and its metrics say so."""
    from firstnet import data as firstnet_data

    small = firstnet_data.Dataset(mnist.x_train[:6000], mnist.y_train[:6000], mnist.x_test[:1000],
                                  mnist.y_test[:1000], source="a test's 6000 digits")
    # The dense network, quick on every backend: the augmentation layers are the same in front of either.
    config = train.TrainConfig(epochs=2, augment="all", seed=0, verbose=0,
                               run_dir=str(tmp_path / "run"))
    result = train.train(config, data=small)
    assert result.metrics["augment"] == "all" and result.metrics["test_accuracy"] > 0.8
    assert "(--augment all)" in train.describe(config, small, 0)
    with pytest.raises(UserError, match="unknown augmentation 'more'; choose one of none, stroke, all"):
        train.TrainConfig(augment="more").check()
    assert augment.is_augmented(firstnet_model.load_model(result.run_dir))
