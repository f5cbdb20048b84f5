"""The convnet's training step against its FLOP floor: the step's arithmetic at the rate this machine's BLAS reaches.

    python benchmarks/convnet_floor.py RUN_DIR [RUN_DIR ...]   # runs of `firstnet train --model convnet`

How the floor is computed. The work of one training step is counted layer by layer (the 2 multiply-adds of each
product; batch normalization, ReLU, pooling, dropout, the softmax and Adam are O(activations) or O(parameters) and
left out, so the floor is a little below what any implementation can reach):

- forward, per digit: conv1 26*26*32*(3*3*1)*2, conv2 11*11*64*(3*3*32)*2, dense 1600*128*2, digits 128*10*2;
- backward, per digit: each kernel's gradient costs what its forward product does; the gradients flowing back into
  conv2's, dense's and digits' inputs cost the same again; none flows into the pixels (conv1's input).

That is 5.26 MFLOP forward and 10.1 MFLOP backward per digit, 1.97 GFLOP per step of 128. The rate is NumPy's
float32 matrix product on a large square (4096), measured in the same process just before: the fastest this
machine multiplies matrices. A run's step time is its fit time without compiling, over its steps (metrics.json).
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ceiling  # noqa: E402

# (name, output positions, product length, filters) per digit: each layer's products as (m, k, n) per digit.
LAYERS = [("conv1", 26 * 26, 3 * 3 * 1, 32), ("conv2", 11 * 11, 3 * 3 * 32, 64), ("dense", 1, 1600, 128),
          ("digits", 1, 128, 10)]


def flop_per_digit():
    """(forward, backward) FLOP of one digit through the convnet, counted as the docstring says."""
    forward = sum(2 * m * k * n for _, m, k, n in LAYERS)
    kernel_gradients = forward
    input_gradients = sum(2 * m * k * n for name, m, k, n in LAYERS if name != "conv1")
    return forward, kernel_gradients + input_gradients


def step_floor_seconds(batch=128, square_gflops=None):
    """The least time one step of `batch` digits can take at the square-sgemm rate (measured if not given)."""
    rate = square_gflops or ceiling.gflops(4096, 4096, 4096, seconds=0.9)
    forward, backward = flop_per_digit()
    return batch * (forward + backward) / (rate * 1e9), rate


def run_step_seconds(run_dir):
    """A run's mean training step, compiling left out, from its metrics.json."""
    metrics = json.loads((pathlib.Path(run_dir) / "metrics.json").read_text())
    steps = metrics["epochs"] * -(-metrics["train_samples"] // metrics["batch_size"])
    return (metrics["fit_seconds"] - (metrics.get("compile_seconds") or 0.0)) / steps, metrics["batch_size"]


def main(argv=None):
    runs = (argv if argv is not None else sys.argv[1:])
    floor, rate = step_floor_seconds()
    forward, backward = flop_per_digit()
    print(f"per digit: forward {forward / 1e6:.2f} MFLOP, backward {backward / 1e6:.2f} MFLOP; square sgemm {rate:.0f} "
          f"GFLOP/s; step floor (batch 128) {floor * 1e3:.2f} ms")
    for run in runs:
        step, batch = run_step_seconds(run)
        run_floor = floor * batch / 128
        print(f"{run}: step {step * 1e3:.2f} ms, {step / run_floor:.2f}x its floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
