"""A saved run in words: the `firstnet runs` table, and the line that says which model answered."""

import pathlib
import textwrap

from firstnet.names import shown

WIDTH = 80  # A terminal's classic width: every table line fits in it.


def model_line(model_path, metrics):
    """"model: runs/... (test_acc 0.9801, trained 2026-11-24 10:15, the tutorial's recipe)", for `predict`."""
    if not metrics:
        return f"model: {model_path} (no metrics.json beside it)"
    accuracy = metrics.get("test_accuracy")
    facts = [f"test_acc {accuracy:.4f}" if isinstance(accuracy, (int, float)) else "test_acc ?",
             f"trained {finished(metrics, short=False)}", recipe(metrics)]
    return f"model: {model_path} ({', '.join(facts)})"


def finished(metrics, short=True):
    """When a run finished: "11-24 10:15" (short, for the table) or "2026-11-24 10:15"."""
    stamp = str(metrics.get("finished_at", "?"))[:16].replace("T", " ")
    return stamp[5:] if short and len(stamp) == 16 else stamp


def learning_rate(metrics):
    """The starting learning rate, rounded as a person would write it, and its schedule when it is not constant."""
    rate = metrics.get("learning_rate")
    # float32 keeps 0.001 as 0.0010000000474974513; four significant digits say what was asked for.
    written = f"{rate:.4g}" if isinstance(rate, (int, float)) else "?"
    schedule = metrics.get("learning_rate_schedule", "constant")
    return written if schedule == "constant" else f"{written} {schedule}"


def loop(metrics):
    """How the run was trained, in one word: model.fit, compiled (firstnet's JAX loop) or numpy (the twin)."""
    text = str(metrics.get("training_loop", "model.fit"))
    if text.startswith("compiled"):
        return "compiled"
    if text.startswith("NumPy"):
        return "numpy"
    # A metrics.json written by hand (or tampered with) may say anything, blank included: its first word, or "?".
    return (text.split() or ["?"])[0][:10]


def data_label(metrics):
    """The data a run trained on, short: "full MNIST", "bundled 5k", the file or folder's name, or for a
    fine-tuned run its collection and the run it started from ("our_digits+MNIST from 2026-12-01_101500")."""
    tuned = metrics.get("finetune")
    if tuned:
        mixed = "+MNIST" if tuned.get("mnist_mixed") else ""
        return f"{pathlib.Path(str(tuned.get('collection', '?'))).name}{mixed} from {pathlib.Path(str(tuned.get('from', '?'))).name}"
    if metrics.get("data_full"):
        return "full MNIST"
    source = str(metrics.get("data_source", "?"))
    if source.startswith("bundled subset"):
        return "bundled 5k"
    return shown(pathlib.Path(source).name or source)


# The settings a run's table can show, each as (header, how to read it from metrics.json), shown only when the
# listed runs differ in it: a column that says the same thing on every row is noise.
def hidden(metrics):
    """The dense network's hidden units; "-" for the convnet, whose hidden layer is its own (128 units)."""
    return "-" if metrics.get("model") == "convnet" else str(metrics.get("hidden_units") or "?")


SETTINGS = (
    ("model", lambda metrics: str(metrics.get("model") or "dense"), "<"),
    ("hidden", hidden, ">"),
    ("optimizer", lambda metrics: str(metrics.get("optimizer", "?")), "<"),
    ("lr", learning_rate, "<"),
    ("val", lambda metrics: f"{metrics.get('validation_split') or 0:g}", ">"),
    ("batch", lambda metrics: str(metrics.get("batch_size", "?")), ">"),
    # How training pictures were redrawn (`--augment`); runs saved before it had none.
    ("augment", lambda metrics: str(metrics.get("augment") or "none"), "<"),
    ("loop", loop, "<"),
)


def recipe(metrics):
    """The tutorial's recipe, `train --fast`'s, the settings that differ from the tutorial's, or the run a
    fine-tuned run started from."""
    if metrics.get("experiment"):  # A notebook's experiment, never the default model: said so wherever it is named.
        return "an experiment, " + recipe({**metrics, "experiment": False})
    if metrics.get("finetune"):
        return f"fine-tuned on {data_label(metrics)}"
    tutorial = {"hidden": "512", "optimizer": "rmsprop", "lr": "0.001", "val": "0", "batch": "128", "augment": "none"}
    if metrics.get("model") == "convnet":  # The next lesson's recipe (train.CONVNET) is the convnet's own.
        tutorial = {"hidden": "-", "optimizer": "adam", "lr": "0.004 cosine", "val": "0", "batch": "128",
                    "augment": "stroke"}
    values = {header: read(metrics) for header, read, _ in SETTINGS if header not in ("loop", "model")}
    changed = [f"{header} {value}" for header, value in values.items() if tutorial[header] != value]
    if metrics.get("model") == "convnet":
        return "the convnet's recipe" if not changed and metrics.get("epochs") == 3 else ", ".join(
            [f"convnet, {metrics.get('epochs', '?')} epochs"] + changed)
    if not changed and metrics.get("epochs") == 5:
        return "the tutorial's recipe"
    if changed == ["lr 0.004 cosine"] and metrics.get("epochs") == 2:
        return "the --fast recipe"
    epochs = metrics.get("epochs", "?")
    return ", ".join([f"{epochs} epoch{'' if epochs == 1 else 's'}"] + changed)


def runs_table(found, root, width=WIDTH):
    """The runs as a table no wider than `width`: run, when, score, epochs, seconds, then what differs.

    A setting (or the data) that is the same in every listed run is said once below the table instead of on every
    row. When the table would be too wide, the finished time goes first, then the last differing columns, which
    are then named below the table.
    """
    # Folder names shown safely (names.py): a name with a right-to-left override cannot pose as another run.
    names = [shown(folder) for folder, _ in found]
    lines = []
    if max(len(name) for name in names) > 24:  # A long --root: name the folder once, then each run by its name.
        lines.append(f"runs in {root}/:")
        names = [shown(pathlib.Path(folder).name) for folder, _ in found]
    core = [("run", names, "<"),
            ("test_acc", [_accuracy(metrics) for _, metrics in found], ">"),
            ("epochs", [str(metrics.get("epochs_completed", metrics.get("epochs", "?"))) for _, metrics in found], ">"),
            ("seconds", [f"{metrics.get('total_seconds') or 0:.1f}" for _, metrics in found], ">")]
    differing, same = [], []
    for header, read, align in SETTINGS + (("data", data_label, "<"),):
        values = [read(metrics) for _, metrics in found]
        # A lone run still says what it trained on and which network; there is nothing to compare it with.
        if len(set(values)) > 1 or (header in ("data", "model") and len(found) == 1):
            differing.append((header, values, align))
        else:
            same.append(f"{header} {values[0]}")
    when = ("finished", [finished(metrics) for _, metrics in found], "<")
    dropped = []
    while differing and _table_width(core + differing) > width:
        dropped.insert(0, differing.pop()[0])
    columns = core[:1] + [when] + core[1:] + differing
    if _table_width(columns) > width:
        columns.remove(when)
    widths = [_column_width(column) for column in columns]
    for row in zip(*([header] + values for header, values, _ in columns)):
        cells = [f"{cell:{align}{size}}" for cell, size, (_, _, align) in zip(row, widths, columns)]
        lines.append(" ".join(cells).rstrip()[:width])
    if same and len(found) > 1:
        lines += textwrap.wrap("same in every run: " + ", ".join(same), width=width, subsequent_indent="  ")
    if dropped:
        lines += textwrap.wrap(f"also differ (no room here; see each run's metrics.json): {', '.join(dropped)}",
                               width=width, subsequent_indent="  ")
    return "\n".join(lines)


def _accuracy(metrics):
    accuracy = metrics.get("test_accuracy")
    return f"{accuracy:.4f}" if isinstance(accuracy, (int, float)) else "?"


def _column_width(column):
    header, values, _ = column
    return max(len(header), *(len(value) for value in values))


def _table_width(columns):
    return sum(_column_width(column) for column in columns) + len(columns) - 1
