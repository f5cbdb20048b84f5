"""The pixels that are blank in every digit of a batch, which the first layer's products of a training step skip.

A digit is mostly background: in a batch of 128 MNIST digits about 256 of the 784 pixels are 0 in every digit.
Each such pixel adds exactly 0 to every sum of the first layer's forward product (0 times a weight), and its row
of the kernel gets a gradient of exactly 0, in model.fit as here. So fit multiplies only the batch's other pixels
(their count rounded up to a multiple of 32, the "width") with the matching rows of the kernel, and hands the
optimizer a full-size gradient whose skipped rows are 0. Nothing else changes: only which zero terms are added,
and so how a matrix library groups the other terms, as with any other library.
"""

import numpy as np

from firstnet.loops.speedups import retrace

# Widths are rounded up to a multiple of this, so that most epochs of a run fit the first epoch's program.
WIDTH_STEP = 32

# Skipping costs three gathers a step (the batch's kept pixels, the kernel's rows, their gradients put back), about
# a tenth of the two products on a CPU: it pays when it leaves out at least a sixth of the pixels.
LEAVE_OUT_AT_LEAST = 1 / 6


def digit_masks(pixels):
    """Each digit's non-blank pixels as bits (numpy.packbits of `pixels != 0`, one row per digit)."""
    pixels = np.asarray(pixels)
    masks = np.empty((len(pixels), -(-pixels.shape[1] // 8)), dtype=np.uint8)
    # In slices, so that the comparison's temporary array stays small and in the cache.
    for first in range(0, len(pixels), 4096):
        masks[first:first + 4096] = np.packbits(pixels[first:first + 4096] != 0, axis=1)
    return masks


def batch_pixels_used(masks, order, batch_size, pixels):
    """For each batch of `order` (digit numbers, whole batches), which pixels are non-blank in any of its digits."""
    steps = len(order) // batch_size
    used = np.bitwise_or.reduce(masks[order].reshape(steps, batch_size, -1), axis=1)
    return np.unpackbits(used, axis=1, count=pixels).astype(bool)


def width_for(used):
    """The fewest columns that hold every batch's non-blank pixels, rounded up to a multiple of WIDTH_STEP.

    All the pixels (no skipping) when that would leave out less than LEAVE_OUT_AT_LEAST of them.
    """
    pixels = used.shape[1]
    most = int(used.sum(axis=1).max())
    width = -(-max(most, 1) // WIDTH_STEP) * WIDTH_STEP
    return width if width <= pixels * (1 - LEAVE_OUT_AT_LEAST) else pixels


def batch_columns(used, width):
    """Each batch's `width` pixel numbers, in increasing order, and where each of its pixels went.

    The columns are the batch's non-blank pixels and, to make up the width, its first blank ones. Returns
    `columns`, shape (batches, width), and `positions`, shape (batches, pixels): the place of each pixel in its
    batch's `columns`, or `width` for a pixel left out (blank in every digit of the batch).
    """
    steps, pixels = used.shape
    if int(used.sum(axis=1).max()) > width:
        raise ValueError(f"a batch has more than {width} non-blank pixels: choose the width with width_for")
    blank_rank = np.cumsum(~used, axis=1, dtype=np.int32)  # 1 for a batch's first blank pixel, 2 for its second...
    kept = used | (blank_rank <= width - used.sum(axis=1, keepdims=True))
    columns = np.nonzero(kept)[1].astype(np.int32).reshape(steps, width)  # Row by row, so each row increases.
    positions = np.where(kept, np.cumsum(kept, axis=1, dtype=np.int32) - 1, width)
    return columns, positions


def products_on_columns(function, *other_rules, images_position=2):
    """`function` (fit's value-and-gradient), with every product of its images argument taken over `columns`.

    The returned function takes three more arguments than `function`: the batch's `columns` and `positions`
    (see batch_columns) and `selected`, the images' values at those columns. `columns_rule` says what changes;
    `other_rules` (see retrace.replaced) are tried after it, in the same single pass over the traced step.
    """
    def on_columns(*arguments):
        *arguments, columns, positions, selected = arguments
        rule = columns_rule(arguments[images_position], columns, positions, selected)
        return retrace.replaced(function, rule, *other_rules)(*arguments)

    return on_columns


def columns_rule(images, columns, positions, selected):
    """A retrace rule: each matrix product of `images` (digits x pixels) computed on `selected` instead.

    Where the product sums over the pixels (the first layer's forward product), the other operand is taken at
    `columns` (the kernel's rows of the kept pixels). Where the pixels stay an axis of the result (the kernel's
    gradient), the result is computed for the kept pixels and put back at `positions`, with zeros for the pixels
    left out, which is what the full product gives them. Any other use of `images` is left as it is.
    """
    import jax
    from jax import numpy as jnp

    def replace(equation, inputs):
        if equation.primitive is not jax.lax.dot_general_p or images.ndim != 2:
            return None
        sides = [side for side, value in enumerate(inputs) if value is images]
        (contracting, batch) = equation.params["dimension_numbers"]
        if len(sides) != 1 or batch != ((), ()):
            return None
        side = sides[0]
        operands = list(inputs)
        operands[side] = selected
        params = equation.primitive.get_bind_params(equation.params)
        if 1 in contracting[side]:
            other_axis = contracting[1 - side][list(contracting[side]).index(1)]
            operands[1 - side] = _taken(inputs[1 - side], columns, other_axis, unique_indices=True,
                                        indices_are_sorted=True)
            return [equation.primitive.bind(*operands, **params)]
        if len(contracting[side]) != 1 or inputs[1 - side].ndim != 2:
            return None
        # The pixels are the images' only axis left in the result: computed with the images first, so that the
        # kept pixels' rows are put back by rows (a transpose around it, as JAX writes this product, cancels out).
        kept_rows = jax.lax.dot_general(selected, inputs[1 - side], ((contracting[side], contracting[1 - side]),
                                                                     ((), ())),
                                        precision=params.get("precision"),
                                        preferred_element_type=params.get("preferred_element_type"))
        padded = jnp.concatenate([kept_rows, jnp.zeros((1,) + kept_rows.shape[1:], kept_rows.dtype)])
        rows = _taken(padded, positions, 0)
        return [rows if side == 0 else rows.T]

    return replace


def selected_pixels(images, rows, columns):
    """The uint8 `images` of digits `rows` at pixels `columns`, inside compiled JAX code (indices in range)."""
    return images.at[rows[:, None], columns[None, :]].get(mode="promise_in_bounds")


def _taken(array, indices, axis, **hints):
    """`array` at `indices` along `axis`, inside compiled JAX code; the indices are in range by construction."""
    return array.at[(slice(None),) * axis + (indices,)].get(mode="promise_in_bounds", **hints)
