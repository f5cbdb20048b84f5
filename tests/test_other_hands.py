"""data/other_hands.py: digits by hands MNIST never saw, the same on every machine, prepared as predict prepares a photo."""

import numpy as np
import pytest
from PIL import Image

from firstnet import images as firstnet_images
from firstnet.data import other_hands


@pytest.fixture(scope="module")
def hands(mnist):
    return other_hands.other_hands(mnist.x_test, mnist.y_test, count=60, seed=0)


def test_three_sets_of_prepared_digits_the_same_every_time(hands, mnist):
    assert set(hands) == set(other_hands.PARTS)
    again = other_hands.other_hands(mnist.x_test, mnist.y_test, count=60, seed=0)
    other_seed = other_hands.other_hands(mnist.x_test, mnist.y_test, count=60, seed=1)
    for part, (digits, labels) in hands.items():
        assert digits.shape == (60, 28, 28) and digits.dtype == np.uint8 and labels.shape == (60,)
        assert np.array_equal(digits, again[part][0]) and np.array_equal(labels, again[part][1])
        assert not np.array_equal(digits, other_seed[part][0])
        # Prepared the MNIST way: full-strength ink, the ink's centre near the field's centre.
        assert (digits.max(axis=(1, 2)) >= 200).all()
        rows, columns = np.mgrid[0:28, 0:28]
        weights = digits.astype(float).sum(axis=(1, 2))
        assert np.abs((digits * rows).sum(axis=(1, 2)) / weights - 13.5).max() < 2
        assert np.abs((digits * columns).sum(axis=(1, 2)) / weights - 13.5).max() < 2
    for part in ("pen", "typed"):
        assert np.array_equal(np.bincount(hands[part][1]), [6] * 10)


def test_each_digit_is_scanned_then_prepared_as_a_photo(mnist):
    """The set's digits are exactly what `prepare_image` makes of their scans: the path `firstnet predict` takes."""
    inks, labels = other_hands.pen_digits(10, seed=4)
    scanned = other_hands.scan(inks[3], np.random.default_rng(0))
    assert scanned.shape == (other_hands.PAGE, other_hands.PAGE)
    # Dark ink on light paper, like a photo: the paper is most of the page and lighter than the ink.
    assert np.median(scanned) > 150 and scanned[inks[3] > 200].mean() < np.median(scanned) - 60
    prepared = firstnet_images.prepare_image(Image.fromarray(scanned))
    again = firstnet_images.prepare_image(other_hands.scan(inks[3], np.random.default_rng(0)))
    assert np.array_equal(prepared, again) and prepared.max() >= 200


def test_the_sets_are_readable_and_not_mnist(hands, trained_run):
    """The tutorial's network reads every part far above chance (they are digits), yet not as well as MNIST's own."""
    for part, (digits, labels) in hands.items():
        probabilities = trained_run.model.predict(digits.reshape(len(digits), -1).astype("float32") / 255, verbose=0)
        accuracy = float((probabilities.argmax(axis=1) == labels).mean())
        assert 0.5 < accuracy < trained_run.metrics["test_accuracy"], part


def test_count_must_be_positive(mnist):
    with pytest.raises(ValueError, match="count must be at least 1"):
        other_hands.other_hands(mnist.x_test, mnist.y_test, count=0)
