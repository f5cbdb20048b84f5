"""What every peer script shares: the command-line flags, the real MNIST from an .npz, and the result line."""

import argparse
import json
import time

import numpy as np

RESULT_PREFIX = "BENCHMARK_RESULT "


def parse_args(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="keras-style mnist.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop each epoch after this many batches (for quick checks, not for timing)")
    parser.add_argument("--target", type=float, default=0.992,
                        help="test accuracy whose first arrival the convnet peers time (default 0.992)")
    parser.add_argument("--stop-at-target", action="store_true",
                        help="end the recipe at the epoch that first reaches --target (its time to target is the same)")
    return parser.parse_args()


def load_mnist(path):
    """The arrays `keras.datasets.mnist.load_data()` returns, read from the file it caches."""
    with np.load(path, allow_pickle=False) as archive:
        return (archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"])


def print_result(**numbers):
    """One machine-readable last line: the benchmark reads fit_seconds and test_accuracy from it."""
    print(RESULT_PREFIX + json.dumps(numbers, sort_keys=True), flush=True)


class Clock:
    """Seconds since the process started its own work (after the interpreter itself came up)."""

    def __init__(self):
        self.started = time.perf_counter()

    def seconds(self):
        return time.perf_counter() - self.started
