"""The pixels that are blank in every digit of a batch, which the first layer's products of a training step skip.

A digit is mostly background: in a batch of 128 MNIST digits about 256 of the 784 pixels are 0 in every digit.
Each such pixel adds exactly 0 to every sum of the first layer's forward product (0 times a weight), and its row
of the kernel gets a gradient of exactly 0, in model.fit as here. So fit multiplies only the batch's other pixels
(their count rounded up to a multiple of 32, the "width") with the matching rows of the kernel, and hands the
optimizer a full-size gradient whose skipped rows are 0. Nothing else changes: only which zero terms are added,
and so how a matrix library groups the other terms, as with any other library.
"""

import functools

import numpy as np

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


def products_on_columns(function, images_position=2):
    """`function`, with each product of its images argument's pixels by a kernel taken over `columns` only.

    The returned function takes two more arguments than `function`: the batch's `columns` (see batch_columns,
    with its `positions`) and `selected`, the images' values at those columns. Any matrix product that contracts
    the images' pixels with a kernel's rows is computed as `selected` times the kernel's rows at `columns`; the
    kernel's gradient gets zero rows for the pixels left out. Everything else runs as traced, on the full images.
    """
    import jax

    def on_columns(*arguments):
        *arguments, columns, positions, selected = arguments
        images = arguments[images_position]

        def replace(equation, inputs):
            if equation.primitive is not jax.lax.dot_general_p or inputs[0] is not images:
                return None
            contracting, batch = equation.params["dimension_numbers"]
            if tuple(map(tuple, contracting)) != ((1,), (0,)) or batch != ((), ()):
                return None
            kernel_rows = _rows(inputs[1], columns, positions)
            return [equation.primitive.bind(selected, kernel_rows,
                                            **equation.primitive.get_bind_params(equation.params))]

        from firstnet import retrace

        return retrace.replaced(function, replace)(*arguments)

    return on_columns


def selected_pixels(images, rows, columns):
    """The uint8 `images` of digits `rows` at pixels `columns`, inside compiled JAX code (indices in range)."""
    return images.at[rows[:, None], columns[None, :]].get(mode="promise_in_bounds")


def _rows(kernel, columns, positions):
    """`kernel[columns]`, whose gradient is the rows' gradients put back at `positions` (zero rows elsewhere)."""
    return _rows_with_gradient()(kernel, columns, positions)


@functools.cache
def _rows_with_gradient():
    import jax
    from jax import numpy as jnp

    def forward(kernel, columns, positions):
        return kernel.at[columns].get(mode="promise_in_bounds", indices_are_sorted=True, unique_indices=True), positions

    def backward(positions, rows_gradient):
        # Each selected row's gradient goes where its pixel is, zero rows elsewhere: a gather, which XLA folds
        # into the optimizer's update, where the scatter into zeros that JAX would write costs two more passes.
        padded = jnp.concatenate([rows_gradient, jnp.zeros((1, rows_gradient.shape[1]), rows_gradient.dtype)])
        return padded.at[positions].get(mode="promise_in_bounds"), None, None

    rows = jax.custom_vjp(lambda kernel, columns, positions: forward(kernel, columns, positions)[0])
    rows.defvjp(forward, backward)
    return rows
