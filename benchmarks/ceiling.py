"""The float32 ceiling of this machine (NumPy's matrix products) and the floor it sets for the lesson's training.

The work of the seed recipe is counted exactly: per digit, the forward pass is 2*(784*512 + 512*10) = 813,056
FLOP and the backward pass 2*784*512 (hidden kernel) + 2*512*10 (output kernel) + 2*10*512 (back into the hidden
layer) = 823,296 FLOP (no gradient is needed for the pixels). Five epochs of 60,000 digits are 490.9 GFLOP;
evaluating 10,000 test digits is 8.1 GFLOP. Bias, ReLU, softmax and RMSprop are O(parameters), under 1% of it.
"""

import time

import numpy as np

INPUTS, HIDDEN, CLASSES = 28 * 28, 512, 10


def forward_flop_per_digit(hidden=HIDDEN):
    return 2 * (INPUTS * hidden + hidden * CLASSES)


def backward_flop_per_digit(hidden=HIDDEN):
    return 2 * INPUTS * hidden + 2 * hidden * CLASSES + 2 * CLASSES * hidden


def workload_flop(epochs=5, train_digits=60000, test_digits=10000, hidden=HIDDEN):
    """Training and evaluation FLOP of the recipe: (490.9e9, 8.1e9) for the seed's numbers."""
    training = epochs * train_digits * (forward_flop_per_digit(hidden) + backward_flop_per_digit(hidden))
    return training, test_digits * forward_flop_per_digit(hidden)


def training_gflop_over_columns(columns, epochs=5, train_digits=60000, hidden=HIDDEN):
    """The recipe's training GFLOP when the first layer's two large products take `columns` of the 784 pixels.

    firstnet leaves out the pixels blank in every digit of a batch (src/firstnet/loops/speedups/blanks.py), so its first-layer
    forward product and kernel gradient are `columns` wide instead of 784; the rest of the work is unchanged.
    """
    first_layer = 2 * 2 * INPUTS * hidden
    per_digit = forward_flop_per_digit(hidden) + backward_flop_per_digit(hidden) - first_layer * (1 - columns / INPUTS)
    return epochs * train_digits * per_digit / 1e9


def step_products(batch=128, hidden=HIDDEN):
    """The matrix products of one training step, as (name, m, k, n, transposed operand)."""
    return [
        ("forward: batch x pixels @ pixels x hidden", batch, INPUTS, hidden, None),
        ("forward: batch x hidden @ hidden x 10", batch, hidden, CLASSES, None),
        ("backward: hidden kernel gradient, pixels^T @ d_hidden", INPUTS, batch, hidden, "a"),
        ("backward: output kernel gradient, hidden^T @ d_logits", hidden, batch, CLASSES, "a"),
        ("backward: d_logits @ output kernel^T", batch, CLASSES, hidden, "b"),
    ]


def _operands(m, k, n, transposed, rng):
    a = rng.random((k, m), dtype=np.float32).T if transposed == "a" else rng.random((m, k), dtype=np.float32)
    b = rng.random((n, k), dtype=np.float32).T if transposed == "b" else rng.random((k, n), dtype=np.float32)
    return a, b


def gflops(m, k, n, transposed=None, seconds=0.3, repeats=5, rng=None):
    """Best GFLOP/s of NumPy's `a @ b` for these shapes over `repeats` timed batches of about `seconds` each."""
    rng = rng or np.random.default_rng(0)
    a, b = _operands(m, k, n, transposed, rng)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    flop = 2.0 * m * k * n
    started = time.perf_counter()
    np.matmul(a, b, out=out)
    once = max(time.perf_counter() - started, 1e-7)
    calls = max(1, int(seconds / repeats / once))
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=out)
        best = max(best, flop * calls / (time.perf_counter() - started) / 1e9)
    return best


def measure(square=4096, batch=128, seconds=0.3, hidden=HIDDEN):
    """The ceiling: a large square sgemm and each of the step's products, in GFLOP/s, with NumPy's BLAS."""
    rng = np.random.default_rng(0)
    result = {"square_size": square, "square_gflops": gflops(square, square, square, seconds=seconds * 3, rng=rng),
              "products": []}
    for name, m, k, n, transposed in step_products(batch, hidden):
        result["products"].append({"name": name, "m": m, "k": k, "n": n, "transposed": transposed,
                                   "gflops": gflops(m, k, n, transposed, seconds=seconds, rng=rng)})
    result["evaluate_gflops"] = gflops(1024, INPUTS, hidden, seconds=seconds, rng=rng)
    return result


def best_of(first, second):
    """The higher rate of two ceiling measurements, product by product: the ceiling is what the machine can do."""
    best = dict(first, square_gflops=max(first["square_gflops"], second["square_gflops"]),
                evaluate_gflops=max(first["evaluate_gflops"], second["evaluate_gflops"]))
    best["products"] = [dict(one, gflops=max(one["gflops"], other["gflops"]))
                        for one, other in zip(first["products"], second["products"])]
    best["measurements"] = first.get("measurements", 1) + second.get("measurements", 1)
    return best


def floors(ceiling, epochs=5, train_digits=60000, test_digits=10000, batch=128, hidden=HIDDEN):
    """Seconds the recipe's matrix products need at the measured rates: the least any implementation can take.

    `fit_at_square_rate` runs all the training FLOP at the large-sgemm rate (the strictest floor);
    `fit_at_step_rates` runs each product of a step at the rate NumPy reaches for that very shape.
    """
    training, evaluation = workload_flop(epochs, train_digits, test_digits, hidden)
    steps = epochs * train_digits / batch
    step_seconds = sum(2.0 * p["m"] * p["k"] * p["n"] / (p["gflops"] * 1e9) for p in ceiling["products"])
    return {
        "train_gflop": training / 1e9,
        "evaluate_gflop": evaluation / 1e9,
        "fit_at_square_rate": training / (ceiling["square_gflops"] * 1e9),
        "fit_at_step_rates": steps * step_seconds,
        "evaluate_at_square_rate": evaluation / (ceiling["square_gflops"] * 1e9),
        "step_rate_gflops": training / (steps * step_seconds) / 1e9,
    }
