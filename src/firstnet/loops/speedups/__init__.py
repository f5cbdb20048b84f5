"""Every speed trick that leans on a dependency's internals, behind one seam: the loops and the start-up ask here.

What is here, each with its guard (and a test that breaks it on purpose to see the guard work):
- blanks.py: the first layer's products skip the pixels blank in a whole batch. Guard: the compiled loop builds
  its programs inside a try; any failure turns the speed-ups off for the run (`compiled._Programs.get`).
- convolutions.py: a convnet's convolutions and poolings as matrix products. Guard: the same, and scoring falls
  back to the plain forward pass (`compiled.score`).
- products.py: one product of the dense step kept in the form XLA runs fast on a CPU. Guard: the same.
- retrace.py: what the three above stand on, a traced JAX function run again with some equations replaced; it
  leans on `jax.make_jaxpr` and `jax.extend.core`, which move between JAX releases.
- lean_import.py: Keras imported with its optional packages hidden and the cycle collector paused, and
  TensorFlow's start-up lines filtered out of stderr. Guard: any failure imports Keras the ordinary way.

Nothing else in firstnet imports these modules; the loops call the functions below. JAX is imported inside them:
this package is imported before Keras chooses its backend, and on other backends JAX is never needed.
"""

from firstnet.loops.speedups import blanks, convolutions, lean_import, products, retrace

# The blank pixels' bookkeeping, in NumPy: the compiled loop plans each epoch's widths with it (blanks.py).
digit_masks = blanks.digit_masks
batch_pixels_used = blanks.batch_pixels_used
batch_columns = blanks.batch_columns
width_for = blanks.width_for
selected_pixels = blanks.selected_pixels

import_keras = lean_import.import_keras
import_keras_quietly = lean_import.import_keras_quietly


def faster_loss(model, loss_function):
    """`loss_function` with a convnet's convolutions as products (before differentiation); itself for a dense one."""
    return convolutions.as_products(model, loss_function)


def faster_forward(model, forward):
    """The model's forward pass for scoring, with its convolutions as products, or None when it has none."""
    return convolutions.as_products(model, forward) if convolutions.has_convolutions(model) else None


def faster_gradient(gradient, skip_blanks, on_cpu):
    """`gradient` (fit's value-and-gradient) traced once and run again with the rewrites that apply.

    With `skip_blanks` its image products run over the batch's columns only (blanks.py); `on_cpu` keeps the one
    product XLA runs slowly on a CPU as JAX wrote it (products.py).
    """
    rules = [products.kept_product_rule] if on_cpu else []
    if skip_blanks:
        return blanks.products_on_columns(gradient, *rules)
    return retrace.replaced(gradient, *rules) if rules else gradient


def names(model, blanks_skipped, on_cpu):
    """The speed-ups a run used, as metrics.json lists them."""
    return ((["blank pixels skipped"] if blanks_skipped else [])
            + (["convolutions as matrix products"] if convolutions.has_convolutions(model) else [])
            + (["kept product"] if on_cpu else []))
