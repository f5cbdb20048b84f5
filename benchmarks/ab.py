"""`firstnet train` as a whole new process, from two source trees in alternating runs: did a change keep the speed?

    python benchmarks/ab.py BEFORE_SRC AFTER_SRC [--runs 5] [-- extra train flags]

Each tree's `src` folder goes first on PYTHONPATH in the same Python, so only firstnet's own code differs. Each tree
gets its own cache folder and one untimed warm-up run (compiled programs, the unpacked MNIST); then the timed runs
alternate, so that other work on the machine slows both alike. Prints each tree's times, their medians and the ratio.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def timed_run(source, cache, flags):
    """Seconds for one `python -m firstnet train --seed 0 --quiet` with firstnet from `source`."""
    with tempfile.TemporaryDirectory(prefix="firstnet-ab-") as runs:
        env = {**os.environ, "PYTHONPATH": str(source), "FIRSTNET_CACHE_DIR": str(cache),
               "FIRSTNET_DATA": os.environ.get("FIRSTNET_DATA", str(DATA)), "FIRSTNET_OFFLINE": "1"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "firstnet", "train", "--seed", "0", "--quiet",
                               "--run-dir", str(pathlib.Path(runs) / "run"), *flags],
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{source}: firstnet train failed:\n{done.stderr}")
    return seconds, done.stdout.splitlines()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=pathlib.Path, help="the src folder of the tree before the change")
    parser.add_argument("after", type=pathlib.Path, help="the src folder of the tree after it")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("flags", nargs="*", help="more flags for firstnet train (after --)")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    times = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="firstnet-ab-cache-") as caches:
        for name, source in trees.items():
            timed_run(source, pathlib.Path(caches) / name, args.flags)  # The untimed warm-up.
        for _ in range(args.runs):
            for name, source in trees.items():
                seconds, accuracy = timed_run(source, pathlib.Path(caches) / name, args.flags)
                times[name].append(seconds)
                print(f"{name}: {seconds:.2f} s ({accuracy})", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name} ({trees[name]}): median {medians[name]:.2f} s of {', '.join(f'{v:.2f}' for v in values)}")
    print(f"after / before: {medians['after'] / medians['before']:.3f}")


if __name__ == "__main__":
    main()
