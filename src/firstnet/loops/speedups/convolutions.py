"""Convolutions as one matrix product each: the compiled loop's way round XLA's slow CPU convolutions.

On a CPU, XLA computes a Keras `Conv2D` (`jax.lax.conv_general_dilated`) and above all its two gradients far
more slowly than a matrix product of the same size (benchmarks/CONVNET.md measures the convnet's step both
ways). So, before the step is differentiated, each convolution of the traced step
is computed as what it is: the input's patches (one shifted slice per kernel position, side by side) times the
kernel laid out as a matrix. JAX then differentiates slices, pads and products, which XLA does fast. The sums are
the convolution's own, only grouped as a matrix library groups them. Only the plain case is rewritten (stride 1,
no dilation, one group, channels last, the layout Keras uses on JAX); any other convolution stays as traced.
"""

from firstnet.loops.speedups import retrace
# Keras on JAX lays out a channels-last Conv2D as images NHWC, kernel HWIO, output NHWC; as dimension numbers
# (batch, feature, spatial...) that is (0, 3, 1, 2) for the images and the output, (3, 2, 0, 1) for the kernel.
CHANNELS_LAST = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def convolutions_rule(equation, inputs):
    """A retrace rule (see retrace.py): a plain 2-D convolution as patches times the kernel, else None."""
    import jax
    from jax import numpy as jnp

    if equation.primitive is not jax.lax.conv_general_dilated_p:
        return None
    images, kernel = inputs
    params = equation.params
    numbers = params["dimension_numbers"]
    layout = (tuple(numbers.lhs_spec), tuple(numbers.rhs_spec), tuple(numbers.out_spec))
    if (images.ndim != 4 or layout != CHANNELS_LAST or any(stride != 1 for stride in params["window_strides"])
            or any(step != 1 for step in (*params["lhs_dilation"], *params["rhs_dilation"]))
            or params["feature_group_count"] != 1 or params["batch_group_count"] != 1):
        return None
    (top, bottom), (left, right) = params["padding"]
    if min(top, bottom, left, right) < 0:
        return None
    if top or bottom or left or right:
        images = jnp.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)))
    count, height, width, channels = images.shape
    kernel_height, kernel_width, _, filters = kernel.shape
    out_height, out_width = height - kernel_height + 1, width - kernel_width + 1
    # Patch features in the kernel's own order (row, column, channel), so the kernel reshapes without a copy.
    patches = jnp.concatenate([images[:, row:row + out_height, column:column + out_width, :]
                               for row in range(kernel_height) for column in range(kernel_width)], axis=-1)
    product = jnp.dot(patches.reshape(-1, kernel_height * kernel_width * channels),
                      kernel.reshape(-1, filters), precision=params.get("precision"),
                      preferred_element_type=params.get("preferred_element_type"))
    return [product.reshape(count, out_height, out_width, filters).astype(equation.outvars[0].aval.dtype)]


def has_convolutions(model):
    """True if the model holds a Conv2D layer, whose convolutions the rule above may rewrite."""
    from keras import layers

    return any(isinstance(layer, layers.Conv2D) for layer in model.layers)


def pooling_rule(equation, inputs):
    """A retrace rule: a max pooling whose windows tile the image (Keras's MaxPooling2D) as a reshape and a max.

    XLA's CPU gradient of a pooling window (`select_and_scatter_add`) is slow; the gradient of a max over a
    reshaped axis is a comparison and a product. Windows that overlap or pad stay as traced.
    """
    import jax

    if equation.primitive is not jax.lax.reduce_window_max_p:
        return None
    (images,) = inputs
    params = equation.params
    dimensions, strides = tuple(params["window_dimensions"]), tuple(params["window_strides"])
    if (images.ndim != 4 or dimensions != strides or dimensions[0] != 1 or dimensions[3] != 1
            or any(low or high for low, high in params["padding"])
            or any(step != 1 for step in (*params["base_dilation"], *params["window_dilation"]))):
        return None
    count, height, width, channels = images.shape
    rows, columns = dimensions[1], dimensions[2]
    kept = images[:, :height // rows * rows, :width // columns * columns, :]
    windows = kept.reshape(count, height // rows, rows, width // columns, columns, channels)
    return [windows.max(axis=(2, 4))]


def as_products(model, function):
    """`function` (of the model's variables and images) with its convolutions and poolings rewritten by the rules
    above; `function` itself for a model without convolutions."""
    if not has_convolutions(model):
        return function
    return retrace.replaced(function, convolutions_rule, pooling_rule)
