"""One matrix product of the training step kept as JAX wrote it, so that XLA on a CPU does not pick its slow form."""


def kept_product_rule(equation, inputs):
    """A retrace rule that keeps XLA's slowest CPU matrix product of the lesson fast, computing the same sums.

    JAX computes the output layer's kernel gradient as d_probabilities^T @ hidden, a 10x512 product over the
    batch, and then transposes it to the kernel's 512x10. XLA folds that transpose into the product and runs its
    512x10 kernel, several times slower on a CPU than the 10x512 product and a large share of a whole training
    step (benchmarks/RESULTS.md measures it). This puts an optimization barrier after each such product (the
    first axis of both operands contracted, far fewer rows than columns), so XLA keeps it as JAX wrote it.
    """
    import jax

    if equation.primitive is not jax.lax.dot_general_p:
        return None
    left, right = inputs
    (contracting, batch) = equation.params["dimension_numbers"]
    if (batch != ((), ()) or tuple(map(tuple, contracting)) != ((0,), (0,)) or left.ndim != 2 or right.ndim != 2
            or left.shape[1] * 8 > right.shape[1]):
        return None
    product = equation.primitive.bind(left, right, **equation.primitive.get_bind_params(equation.params))
    return [jax.lax.optimization_barrier(product)]
