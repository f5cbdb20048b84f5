"""Turn the benchmark's raw numbers into benchmarks/RESULTS.md: the table, the goals, the phases, the machine."""

import pathlib
import statistics

# Hand-written: what each speed trick buys, what it leans on and its fallback; appended to RESULTS.md.
SPEED_STORY = pathlib.Path(__file__).parent / "SPEED.md"

# The issues' goals for `firstnet train` with the seed recipe; the two loops' median accuracies (issue 12) agree
# within a tenth of a point.
LOOPS_AGREE = 0.001
# Issue 16: firstnet on torch and TensorFlow within this factor of its JAX time, whole process.
OTHER_BACKENDS_OVER_JAX = 2.0
FIT_OVER_FLOOR = 1.3
WHOLE_OVER_TORCH = 0.5
WHOLE_OVER_KERAS_TF = 0.3
ACCURACY = 0.978
HELP_SECONDS = 0.3

PHASES = ("import_seconds", "data_seconds", "compile_seconds", "fit_seconds", "evaluate_seconds", "save_seconds",
          "total_seconds")


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def spread(values, digits=2):
    """'median (min-max)' of the values, or '-' when there are none."""
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def summarize(runs):
    """Per variant: the lists of whole-process seconds, fit seconds, accuracies, peak memory, and medians."""
    summary = {}
    for run in runs:
        if run.get("returncode") != 0:
            continue
        entry = summary.setdefault(run["variant"], {"whole": [], "fit": [], "accuracy": [], "rss_mb": [], "phases": {},
                                                    "columns": []})
        entry["whole"].append(run["wall_seconds"])
        entry["fit"].append(run["result"].get("fit_seconds"))
        entry["accuracy"].append(run["result"].get("test_accuracy"))
        entry["rss_mb"].append(run["maxrss_kb"] / 1024)
        entry["columns"].append(run["result"].get("first_layer_columns"))
        for phase in PHASES:
            if phase in run["result"]:
                entry["phases"].setdefault(phase, []).append(run["result"][phase])
    for entry in summary.values():
        entry["whole_median"] = median(entry["whole"])
        entry["fit_median"] = median(entry["fit"])
        entry["accuracy_median"] = median(entry["accuracy"])
    return summary


def whole_process_goals(entry, summary, results, prefix=""):
    """The whole-process goals against PyTorch and Keras + TensorFlow, for one variant's summary `entry`."""
    found = []
    for peer, limit in (("torch_loop", WHOLE_OVER_TORCH), ("seed_keras_tf", WHOLE_OVER_KERAS_TF)):
        if peer in summary:
            ratio = entry["whole_median"] / summary[peer]["whole_median"]
            found.append((f"{prefix}whole process <= {limit}x {results['variants'][peer]['label']}",
                          f"<= {limit * summary[peer]['whole_median']:.2f} s",
                          f"{entry['whole_median']:.2f} s = {ratio:.2f}x", ratio <= limit))
    return found


def goals(results, summary):
    """Each goal of the issue: (what, target, measured, met)."""
    found = []
    ours = summary.get("firstnet")
    floors = results["floors"]
    if ours:
        for label, floor in (("workload's own shapes", floors["fit_at_step_rates"]),
                             ("large square sgemm", floors["fit_at_square_rate"])):
            ratio = ours["fit_median"] / floor
            found.append((f"fit <= {FIT_OVER_FLOOR}x the float32 floor ({label}: {floor:.2f} s)",
                          f"<= {FIT_OVER_FLOOR * floor:.2f} s", f"{ours['fit_median']:.2f} s = {ratio:.2f}x",
                          ratio <= FIT_OVER_FLOOR))
        found += whole_process_goals(ours, summary, results)
        found.append((f"median test accuracy over {len(ours['accuracy'])} seeds >= {ACCURACY}", f">= {ACCURACY}",
                      f"{ours['accuracy_median']:.4f}", ours["accuracy_median"] >= ACCURACY))
    with_fit = summary.get("firstnet_fit")
    if ours and with_fit:
        # Accuracies on 10,000 test digits are whole multiples of 1e-4: compare the gap as such, not as a float.
        gap = round(abs(ours["accuracy_median"] - with_fit["accuracy_median"]), 4)
        found.append((f"`--loop fit` (model.fit) and the compiled loop: median test accuracies within "
                      f"{LOOPS_AGREE * 100:.1f} point", f"<= {LOOPS_AGREE:.4f}",
                      f"{with_fit['accuracy_median']:.4f} vs {ours['accuracy_median']:.4f}", gap <= LOOPS_AGREE))
    for name in ("firstnet_torch", "firstnet_tensorflow"):
        other = summary.get(name)
        if ours and other:
            ratio = other["whole_median"] / ours["whole_median"]
            found.append((f"{results['variants'][name]['label']}: whole process <= {OTHER_BACKENDS_OVER_JAX}x JAX's",
                          f"<= {OTHER_BACKENDS_OVER_JAX * ours['whole_median']:.2f} s",
                          f"{other['whole_median']:.2f} s = {ratio:.2f}x", ratio <= OTHER_BACKENDS_OVER_JAX))
    fast = summary.get("firstnet_fast")
    if fast:
        # The stretch goal: the same accuracy sooner than the float32 floor allows the seed recipe, by other settings.
        floor = floors["fit_at_square_rate"]
        found.append((f"stretch, `--fast`: fit below the seed recipe's float32 floor ({floor:.2f} s)", f"< {floor:.2f} s",
                      f"{fast['fit_median']:.2f} s = {fast['fit_median'] / floor:.2f}x", fast["fit_median"] < floor))
        found.append((f"stretch, `--fast`: median test accuracy over {len(fast['accuracy'])} seeds >= {ACCURACY}",
                      f">= {ACCURACY}", f"{fast['accuracy_median']:.4f}", fast["accuracy_median"] >= ACCURACY))
        found += whole_process_goals(fast, summary, results, prefix="stretch, `--fast`: ")
    if results.get("help_seconds"):
        help_median = median(results["help_seconds"])
        found.append((f"`firstnet --help` <= {HELP_SECONDS} s", f"<= {HELP_SECONDS} s", f"{help_median:.3f} s",
                      help_median <= HELP_SECONDS))
    return found


def skipped_work(results, summary):
    """A paragraph on the work firstnet leaves out (blank pixels), when its runs report it."""
    import ceiling as ceiling_module

    ours = summary.get("firstnet")
    columns = median(ours["columns"]) if ours else None
    if not columns:
        return []
    floors = results["floors"]
    done = ceiling_module.training_gflop_over_columns(columns, epochs=results["epochs"])
    rate = results["ceiling"]["square_gflops"]
    return [
        "",
        f"The floor counts the whole recipe, the same for every variant. `firstnet train` leaves out of the first "
        f"layer's two large products the pixels that are blank in every digit of a batch (they add exact zeros; "
        f"`src/firstnet/loops/speedups/blanks.py`): {columns:.0f} of 784 columns on average, so its training computes "
        f"{done:.1f} of the {floors['train_gflop']:.1f} GFLOP. At the square-sgemm rate that work alone would take "
        f"{done / rate:.2f} s, and its fit ({ours['fit_median']:.2f} s) is {ours['fit_median'] / (done / rate):.2f}x "
        f"that.",
    ]


def render(results):
    """RESULTS.md as text."""
    summary = summarize(results["runs"])
    machine, floors, ceiling = results["machine"], results["floors"], results["ceiling"]
    baseline = summary.get("firstnet", {}).get("whole_median")
    lines = [
        "# Benchmark: the seed recipe, firstnet against its peers",
        "",
        f"Produced by `{results['command']}` on {results['date']}.",
        "",
        "Seed recipe everywhere: Dense(512, relu) -> Dense(10, softmax), RMSprop (lr 0.001, rho 0.9), categorical "
        f"cross-entropy, {results['epochs']} epoch{'s' if results['epochs'] != 1 else ''}, batch 128, the real MNIST ({results['data']}). Runs alternate "
        f"round-robin, {results['runs_per_variant']} per variant after one untimed warm-up each; seed = round number. "
        "*Whole process* is the wall time of the command, from start to exit, measured by the benchmark; *fit* is "
        "what the program itself reports for training (firstnet: `fit_seconds` in metrics.json, compile included).",
        "",
        "| variant | whole process s, median (min-max) | fit s, median (min-max) | test accuracy, median (min-max) "
        "| peak memory MB | whole process vs firstnet |",
        "|---|---|---|---|---|---|",
    ]
    for name, variant in results["variants"].items():
        entry = summary.get(name)
        if not entry:
            lines.append(f"| {variant['label']} | failed: see results.json | | | | |")
            continue
        ratio = f"{entry['whole_median'] / baseline:.2f}x" if baseline else "-"
        lines.append(f"| {variant['label']} | {spread(entry['whole'])} | {spread(entry['fit'])} | "
                     f"{spread(entry['accuracy'], 4)} | {median(entry['rss_mb']):.0f} | {ratio} |")
    lines += ["", "## Goals (issues 3 and 12)", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    for what, target, measured, met in goals(results, summary):
        lines.append(f"| {what} | {target} | {measured} | {'yes' if met else '**no**'} |")
    lines += [
        "",
        "## Where firstnet's time goes (medians, seconds, from metrics.json)",
        "",
        "Data loads in a thread while Keras imports, so `data` overlaps `import`; `fit` includes `compile`. "
        "*Interpreter and CLI* is the whole process minus firstnet's own `total`.",
        "",
        "| variant | import | data (overlapped) | compile | fit | evaluate | save | total | whole process "
        "| interpreter and CLI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("firstnet", "firstnet_cold_cache", "firstnet_fast", "firstnet_fit", "firstnet_torch",
                 "firstnet_tensorflow"):
        entry = summary.get(name)
        if not entry:
            continue
        phases = {phase: median(values) for phase, values in entry["phases"].items()}
        cells = [f"{phases[phase]:.2f}" if phases.get(phase) is not None else "-" for phase in PHASES]
        outside = f"{entry['whole_median'] - phases['total_seconds']:.2f}" if phases.get("total_seconds") else "-"
        lines.append(f"| {results['variants'][name]['label']} | {' | '.join(cells)} | {entry['whole_median']:.2f} | "
                     f"{outside} |")
    lines += [
        "",
        "## The float32 ceiling and the floor it sets",
        "",
        f"NumPy matrix products on all {machine['cores']} cores (best of {ceiling.get('measurements', 1)} "
        f"measurements, one before the runs and one after each round): a "
        f"{ceiling['square_size']}x{ceiling['square_size']} sgemm runs at **{ceiling['square_gflops']:.0f} GFLOP/s**. The recipe's training is "
        f"{floors['train_gflop']:.1f} GFLOP (plus {floors['evaluate_gflop']:.1f} GFLOP to evaluate), so fit cannot "
        f"take less than **{floors['fit_at_square_rate']:.2f} s** at that rate, or "
        f"**{floors['fit_at_step_rates']:.2f} s** with each product of a step at the rate NumPy reaches for its own "
        f"shape ({floors['step_rate_gflops']:.0f} GFLOP/s on average):",
        "",
        "| product of one training step (m x k @ k x n) | GFLOP/s |",
        "|---|---|",
    ]
    for product in ceiling["products"]:
        lines.append(f"| {product['name']} ({product['m']}x{product['k']} @ {product['k']}x{product['n']}) | "
                     f"{product['gflops']:.0f} |")
    lines.append(f"| evaluation: 1024x784 @ 784x512 | {ceiling['evaluate_gflops']:.0f} |")
    lines += skipped_work(results, summary)
    load = results["load"]
    lines += [
        "",
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; memory {machine['memory_gb']:.0f} GB; {machine['os']}",
        f"- Load average (1 min) during the timed runs: {load['min']:.2f} to {load['max']:.2f} "
        f"(median {load['median']:.2f}); other work on this machine slows every variant alike, since runs alternate.",
        f"- `firstnet --help`: {spread(results.get('help_seconds') or [], 3)} s over {len(results.get('help_seconds') or [])} runs",
    ]
    for variant in results["variants"].values():
        versions = ", ".join(f"{key} {value}" for key, value in sorted(variant.get("versions", {}).items()))
        lines.append(f"- {variant['label']}: `{variant['command']}`; {versions}")
    lines += ["", f"Raw numbers: `{results['json_name']}`.", ""]
    # The hand-written story of the speed tricks (what each buys, what it leans on, its fallback) follows the numbers.
    if SPEED_STORY.is_file():
        story = SPEED_STORY.read_text(encoding="utf-8").strip()
        lines += ["", "#" + story if story.startswith("# ") else story, ""]
    return "\n".join(lines)
