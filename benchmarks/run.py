"""One command for the whole benchmark: the float32 floor, `firstnet train` as a user runs it, and its peers.

    python benchmarks/run.py              # 5 alternating runs of each variant; writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick      # 1 run of 1 epoch each, for development; writes under benchmarks/.cache/
    python benchmarks/run.py --runs 9 --variants firstnet,torch_loop

Each peer runs in its own virtual environment, created once under benchmarks/.envs/ and reused. Runs alternate
round-robin so that other work on the machine slows every variant alike; each variant gets one untimed warm-up
run first (file cache, bytecode, firstnet's cache folder: compiled programs and the unpacked MNIST), and
`firstnet_cold_cache` measures the first run a user ever makes, with an empty cache folder.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import ceiling  # noqa: E402
import envs  # noqa: E402
import report  # noqa: E402

PEERS = HERE / "peers"
RESULT_PREFIX = "BENCHMARK_RESULT "
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist.npz"

VARIANTS = {
    "firstnet": "`firstnet train --quiet` (Keras 3 + JAX, cache folder warm)",
    "firstnet_cold_cache": "`firstnet train --quiet`, first run ever (empty cache folder)",
    "firstnet_fast": "`firstnet train --fast --quiet` (not the seed recipe: 2 epochs, cosine-decayed rate)",
    "firstnet_fit": "`firstnet train --loop fit --quiet` (Keras's own model.fit, the tutorial's call)",
    "firstnet_torch": "`KERAS_BACKEND=torch firstnet train --quiet` (model.fit on PyTorch 2.13 CPU)",
    "firstnet_tensorflow": "`KERAS_BACKEND=tensorflow firstnet train --quiet` (model.fit on TensorFlow)",
    "seed_keras_jax": "the seed's script, Keras 3 + JAX (firstnet's environment)",
    "seed_keras_tf": "the seed's script as it installs it: Keras 3 + TensorFlow",
    "torch_loop": "a plain PyTorch loop, torch 2.13 CPU",
    "numpy_loop": "NumPy from scratch",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="1 run of 1 epoch per variant and a short ceiling measurement; results go under "
                             "benchmarks/.cache/ unless --out is given")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per variant (default 5; --quick: 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the recipe (default 5; --quick: 1)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help=f"the real MNIST (default {DEFAULT_DATA})")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", help="folder for RESULTS.md and results.json (default benchmarks/)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 5)
    args.epochs = args.epochs or (1 if args.quick else 5)
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if not pathlib.Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file; give the real MNIST mnist.npz")
    args.out = pathlib.Path(args.out) if args.out else (HERE / ".cache" / "quick" if args.quick else HERE)
    return args


def firstnet_command():
    """`firstnet` as installed beside this interpreter (the console script a user types), else `python -m firstnet`."""
    script = pathlib.Path(sys.executable).parent / ("firstnet.exe" if os.name == "nt" else "firstnet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "firstnet"]


def build_variants(names, data, epochs, scratch, log):
    """For each variant: its label, how to start one run (seed, folder -> argv, env), and its versions."""
    built = {}
    peer_flags = ["--data", str(data), "--epochs", str(epochs)]
    warm_cache = scratch / "firstnet-cache"
    for name in names:
        if name.startswith("firstnet"):
            other_backend = name.partition("_")[2] if name in ("firstnet_torch", "firstnet_tensorflow") else None
            python = envs.ensure_env(name, log=log) if other_backend else pathlib.Path(sys.executable)
            cold = name == "firstnet_cold_cache"
            # --fast is its own recipe (its epochs included); the others run the seed recipe's epochs.
            recipe = ["--fast"] if name == "firstnet_fast" else ["--epochs", str(epochs)]
            recipe += ["--loop", "fit"] if name == "firstnet_fit" else []

            def start(seed, folder, cold=cold, recipe=recipe, python=python, other_backend=other_backend):
                command = [str(python), "-m", "firstnet"] if other_backend else firstnet_command()
                argv = [*command, "train", "--quiet", *recipe, "--seed", str(seed),
                        "--data", str(data), "--run-dir", str(folder / "run")]
                cache = folder / "firstnet-cache" if cold else warm_cache
                return argv, {"FIRSTNET_CACHE_DIR": str(cache), **({"KERAS_BACKEND": other_backend} if other_backend else {})}

            shown = (f"{'KERAS_BACKEND=' + other_backend + ' ' if other_backend else ''}"
                     f"firstnet train --quiet {'--fast ' if name == 'firstnet_fast' else ''}"
                     f"{'--loop fit ' if name == 'firstnet_fit' else ''}--seed S --data MNIST --run-dir TMP")
        else:
            env_name, script, backend = {
                "seed_keras_jax": (None, "seed_keras.py", "jax"),
                "seed_keras_tf": ("keras_tf", "seed_keras.py", "tensorflow"),
                "torch_loop": ("torch", "torch_loop.py", None),
                "numpy_loop": ("numpy", "numpy_loop.py", None),
            }[name]
            python = pathlib.Path(sys.executable) if env_name is None else envs.ensure_env(env_name, log=log)

            def start(seed, folder, python=python, script=script, backend=backend):
                return [str(python), str(PEERS / script), *peer_flags, "--seed", str(seed)], (
                    {"KERAS_BACKEND": backend} if backend else {})

            environment = "firstnet's .venv" if env_name is None else f"benchmarks/.envs/{env_name}"
            shown = (f"{'KERAS_BACKEND=' + backend + ' ' if backend else ''}python benchmarks/peers/{script} "
                     f"--data MNIST --seed S ({environment})")
        built[name] = {"label": VARIANTS[name], "start": start, "command": shown,
                       "versions": envs.installed_versions(python)}
    return built


def run_once(variant, seed, scratch):
    """Start one run as a separate process; its wall time, peak memory (maxrss) and its reported numbers."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    argv, extra_env = variant["start"](seed, folder)
    environment = {**user_environment(), **extra_env}
    load_before = os.getloadavg()[0]
    with open(folder / "stdout.txt", "wb") as stdout, open(folder / "stderr.txt", "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=environment, cwd=folder)
        returncode, maxrss_kb = wait_with_usage(process)
        wall_seconds = time.perf_counter() - started
    record = {"seed": seed, "wall_seconds": wall_seconds, "maxrss_kb": maxrss_kb, "returncode": returncode,
              "load_before": load_before, "load_after": os.getloadavg()[0], "result": {}}
    stdout_text = (folder / "stdout.txt").read_text(errors="replace")
    if returncode == 0:
        try:
            record["result"] = read_result(stdout_text, folder / "run" / "metrics.json")
        except ValueError as error:
            record.update(returncode=-1, stderr_tail=f"{error}; output ends with: {stdout_text[-500:]}")
    else:
        record["stderr_tail"] = (folder / "stderr.txt").read_text(errors="replace")[-2000:]
    shutil.rmtree(folder, ignore_errors=True)
    return record


def wait_with_usage(process):
    """Wait for the child; return its exit code and its own peak resident memory in KB.

    os.wait4 gives this one child's resource usage; resource.getrusage(RUSAGE_CHILDREN) would report the largest
    of all children so far, which hides a smaller peak that comes after a larger one.
    """
    if not hasattr(os, "wait4"):
        import resource

        return process.wait(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss


def read_result(stdout_text, metrics_path=None):
    """A peer's last BENCHMARK_RESULT line, or firstnet's metrics.json (its phases and scores)."""
    if metrics_path is not None and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        keep = ("test_accuracy", "test_loss", *report.PHASES, "data_wait_seconds", "first_layer_columns")
        return {key: metrics[key] for key in keep if key in metrics}
    for line in reversed(stdout_text.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise ValueError("no result line in the output")


def user_environment():
    """This process's environment as a user's shell would have it for every variant.

    Without PYTHONPATH, so each variant imports what its environment installed; and without
    PYTHONDONTWRITEBYTECODE, which some sandboxes and CI machines set: with it Python compiles the modules of an
    editable install (firstnet's own, and the peers' common.py) again in every run, 0.03 to 0.04 s, where a
    user's Python compiles them once, in the untimed warm-up run. Installed packages come compiled by pip.
    """
    environment = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE"):
        environment.pop(name, None)
    return environment


def time_help(count=10):
    """Seconds for `firstnet --help`, each a fresh process."""
    found = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([*firstnet_command(), "--help"], capture_output=True, check=True, env=user_environment())
        found.append(time.perf_counter() - started)
    return found


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = next(int(line.split()[1]) for line in pathlib.Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        memory_kb = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_kb / 1024 / 1024,
            "os": platform.platform(), "python": platform.python_version()}


def main(argv=None):
    args = parse_args(argv)
    log = lambda line: print(line, flush=True)  # noqa: E731
    command = "python benchmarks/run.py" + (" " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    log(f"load average now: {os.getloadavg()[0]:.2f} (other work on the machine adds noise)")
    log("measuring the float32 ceiling with NumPy ...")
    square, seconds = (2048, 0.1) if args.quick else (4096, 0.3)
    measured_ceiling = ceiling.measure(square=square, seconds=seconds)
    log(f"  {measured_ceiling['square_gflops']:.0f} GFLOP/s (measured again after each round; the best counts)")

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="firstnet-benchmark-"))
    try:
        variants = build_variants(args.variants, args.data, args.epochs, scratch, log)
        runs = []
        loads = []
        for name, variant in variants.items():
            log(f"warm-up: {name}")
            warm = run_once(variant, seed=0, scratch=scratch)
            if warm["returncode"] != 0:
                log(f"  {name} failed:\n{warm.get('stderr_tail', '')}")
        for round_index in range(args.runs):
            # Rotate the order each round, so no variant always runs right after the same neighbour.
            names = list(variants)
            names = names[round_index % len(names):] + names[:round_index % len(names)]
            for name in names:
                record = run_once(variants[name], seed=round_index, scratch=scratch)
                record.update(variant=name, round=round_index)
                runs.append(record)
                loads += [record["load_before"], record["load_after"]]
                outcome = (f"{record['wall_seconds']:.2f} s, fit {record['result'].get('fit_seconds', 0):.2f} s, "
                           f"acc {record['result'].get('test_accuracy', 0):.4f}" if record["returncode"] == 0
                           else f"FAILED:\n{record.get('stderr_tail', '')}")
                log(f"round {round_index + 1}/{args.runs} {name}: {outcome} (load {record['load_before']:.2f})")
            # Other work on the machine can only lower a measured rate: keep the best seen, product by product.
            measured_ceiling = ceiling.best_of(measured_ceiling, ceiling.measure(square=square, seconds=seconds))
        help_seconds = time_help()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    floors = ceiling.floors(measured_ceiling, epochs=args.epochs)
    log(f"ceiling {measured_ceiling['square_gflops']:.0f} GFLOP/s; fit floor {floors['fit_at_square_rate']:.2f} s "
        f"(square rate), {floors['fit_at_step_rates']:.2f} s (the step's own shapes)")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": command,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": args.data,
        "epochs": args.epochs,
        "runs_per_variant": args.runs,
        "machine": machine(),
        "ceiling": measured_ceiling,
        "floors": floors,
        "variants": {name: {key: value for key, value in variant.items() if key != "start"}
                     for name, variant in variants.items()},
        "runs": runs,
        "help_seconds": help_seconds,
        "load": {"min": min(loads), "max": max(loads), "median": statistics.median(loads)} if loads else
                {"min": 0.0, "max": 0.0, "median": 0.0},
        "json_name": "results.json",
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(report.render(results))
    log(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'}")
    failed = [run for run in runs if run["returncode"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
