"""Run a JAX function's traced computation again, equation by equation, with some equations computed another way."""


def replaced(function, *rules):
    """`function`, traced once and then run again with the `rules` deciding each equation.

    A rule, `rule(equation, inputs)`, returns the equation's outputs computed its own way, or None to leave the
    equation to the next rule and at last to run it as traced. The inputs it sees are the values the caller
    passed in (the same Python objects), so it can recognise them. Equations inside nested `jit`s are visited too.
    The compiled loop uses this to steer XLA on a CPU (`_kept_product`) and to skip blank pixels (`blanks.columns_rule`).
    """
    import jax

    def replace(equation, inputs):
        for rule in rules:
            outputs = rule(equation, inputs)
            if outputs is not None:
                return outputs
        return None

    def run(*arguments):
        traced, shapes = jax.make_jaxpr(function, return_shape=True)(*arguments)
        results = _evaluate(traced.jaxpr, traced.consts, jax.tree.leaves(arguments), replace)
        return jax.tree.unflatten(jax.tree.structure(shapes), results)

    return run


def _evaluate(jaxpr, constants, arguments, replace):
    from jax.extend import core as jax_core

    values = dict(zip(jaxpr.constvars, constants))
    values.update(zip(jaxpr.invars, arguments))

    def read(atom):
        return atom.val if isinstance(atom, jax_core.Literal) else values[atom]

    for equation in jaxpr.eqns:
        inputs = [read(atom) for atom in equation.invars]
        outputs = replace(equation, inputs)
        if outputs is None and equation.primitive.name in ("jit", "pjit"):
            inner = equation.params["jaxpr"]
            outputs = _evaluate(inner.jaxpr, inner.consts, inputs, replace)
        if outputs is None:
            result = equation.primitive.bind(*inputs, **equation.primitive.get_bind_params(equation.params))
            outputs = result if equation.primitive.multiple_results else [result]
        values.update(zip(equation.outvars, outputs))
    return [read(atom) for atom in jaxpr.outvars]
