"""Skipping the pixels blank in a whole batch computes the same step: checked against the full products."""

import keras
import numpy as np
import pytest

from firstnet import data as mnist_data, model as firstnet_model
from firstnet.loops import compiled
from firstnet.loops.speedups import blanks

# The blank-pixel speed-up belongs to the compiled loop, which runs on JAX.
pytestmark = pytest.mark.backend("jax")


def shuffled_batches(mnist, count, batch_size=128, seed=3):
    pixels = np.ascontiguousarray(mnist.x_train[:count].reshape(count, -1))
    steps = -(-count // batch_size)
    order, weights = compiled._epoch_order(np.random.default_rng(seed), count, steps, batch_size)
    return pixels, order, weights


def test_digit_masks_are_the_bits_of_the_nonblank_pixels(mnist):
    # More digits than one slice of 4096, and a row length that is not a whole number of bytes.
    pixels = mnist.x_train[:9000].reshape(9000, -1)
    assert np.array_equal(blanks.digit_masks(pixels), np.packbits(pixels != 0, axis=1))
    odd = np.random.default_rng(0).integers(0, 3, size=(50, 13), dtype=np.uint8)
    assert np.array_equal(blanks.digit_masks(odd), np.packbits(odd != 0, axis=1))


def test_each_batch_keeps_every_pixel_any_of_its_digits_uses(mnist):
    pixels, order, _ = shuffled_batches(mnist, 3000)
    used = blanks.batch_pixels_used(blanks.digit_masks(pixels), order, 128, 784)
    width = blanks.width_for(used)
    columns, positions = blanks.batch_columns(used, width)

    counts = []
    for batch, rows in enumerate(order.reshape(-1, 128)):
        # The same thing computed from the digits themselves, the last batch's padding digits included.
        nonblank = np.flatnonzero((pixels[rows] != 0).any(axis=0))
        counts.append(len(nonblank))
        assert np.array_equal(np.flatnonzero(used[batch]), nonblank)
        assert np.all(np.diff(columns[batch]) > 0) and np.isin(nonblank, columns[batch]).all()
        left_out = np.setdiff1d(np.arange(784), columns[batch])
        assert not pixels[rows][:, left_out].any()
        assert np.array_equal(positions[batch, columns[batch]], np.arange(width))
        assert np.all(positions[batch, left_out] == width)
    # The narrowest multiple of 32 that holds the busiest batch; MNIST leaves a third of the pixels out.
    assert width % blanks.WIDTH_STEP == 0 and width - blanks.WIDTH_STEP < max(counts) <= width < 640


def test_batches_without_blank_pixels_keep_them_all():
    used = np.ones((3, 784), dtype=bool)
    assert blanks.width_for(used) == 784
    # Leaving out a few pixels costs more than it saves: 672 columns would leave out a seventh, 640 more than a sixth.
    used[:, 660:] = False
    assert blanks.width_for(used) == 784
    used[:, 640:] = False
    assert blanks.width_for(used) == 640
    columns, positions = blanks.batch_columns(used, 784)
    assert np.array_equal(columns, np.tile(np.arange(784), (3, 1))) and np.array_equal(positions, columns)


def test_a_width_too_small_is_refused():
    used = np.zeros((2, 100), dtype=bool)
    used[1, :40] = True
    with pytest.raises(ValueError, match="more than 32 non-blank pixels"):
        blanks.batch_columns(used, 32)


@pytest.mark.slow
def test_skipped_blanks_give_the_full_products_loss_and_gradients(mnist):
    import jax
    from jax import numpy as jnp

    keras.utils.set_random_seed(2)
    model = firstnet_model.compile_model(firstnet_model.build_model(hidden_units=64))
    pixels, order, weights = shuffled_batches(mnist, 128)
    used = blanks.batch_pixels_used(blanks.digit_masks(pixels), order, 128, 784)
    width = blanks.width_for(used)
    columns, positions = blanks.batch_columns(used, width)
    images = jnp.asarray(mnist_data.prepare_images(pixels[order]))
    targets = jnp.asarray(mnist_data.one_hot(mnist.y_train[:128][order]))
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    loss_function = compiled._loss_function(model)

    full = jax.value_and_grad(loss_function, has_aux=True)
    skipping = blanks.products_on_columns(full)
    (loss, _), gradients = jax.jit(full)(trainable, non_trainable, images, targets, jnp.asarray(weights))
    arguments = (trainable, non_trainable, images, targets, jnp.asarray(weights), columns[0], positions[0],
                 images[:, columns[0]])
    (skipped_loss, _), skipped_gradients = jax.jit(skipping)(*arguments)

    # The skipped product really is narrower: the first layer multiplies 128 x width by width x 64.
    traced = str(jax.make_jaxpr(skipping)(*arguments))
    assert f"f32[128,{width}]" in traced and f"f32[{width},64]" in traced
    np.testing.assert_allclose(skipped_loss, loss, rtol=1e-6)
    for expected, found in zip(gradients, skipped_gradients):
        np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-7)
    # A left-out pixel's kernel row gets a gradient of exactly 0, as it does from the full product.
    left_out = positions[0] == width
    assert left_out.sum() == 784 - width
    assert not np.asarray(skipped_gradients[0])[left_out].any() and not np.asarray(gradients[0])[left_out].any()


def test_compiled_program_multiplies_only_the_kept_columns(mnist):
    import jax

    keras.utils.set_random_seed(2)
    model = firstnet_model.compile_model(firstnet_model.build_model(hidden_units=512))
    model.optimizer.build(model.trainable_variables)
    pixels, order, weights = shuffled_batches(mnist, 1000)
    used = blanks.batch_pixels_used(blanks.digit_masks(pixels), order, 128, 784)
    columns, positions = blanks.batch_columns(used, 576)
    program = compiled._training_program(model, 128, 784, 576)
    lowered = program.lower(compiled._read_state(model), compiled._zero_totals(), jax.numpy.asarray(pixels),
                            jax.numpy.asarray(mnist.y_train[:1000].astype(np.int32)), order, weights, columns,
                            positions, 0, 1).as_text()
    products = [line.split(":")[-1] for line in lowered.splitlines() if "stablehlo.dot_general" in line]
    # Forward 128x576 by 576x512 and the kernel gradient 576x128 by 128x512: no product is 784 pixels wide.
    assert any("(tensor<128x576xf32>, tensor<576x512xf32>)" in product for product in products), products
    assert any("(tensor<128x576xf32>, tensor<128x512xf32>) -> tensor<576x512xf32>" in product
               for product in products), products
    assert not any("784" in product for product in products), products
