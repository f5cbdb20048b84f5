"""Run folders: a new one made safely, a finished run saved whole, and runs found and read back."""

import contextlib
import datetime
import json
import pathlib
import time

import numpy as np

from firstnet import files, plots
from firstnet.errors import UserError
from firstnet.files import DEFAULT_RUNS_ROOT

def new_run_dir(run_dir=None, root=DEFAULT_RUNS_ROOT):
    """Create a fresh run folder: `run_dir` if given and empty, else `runs/<date>_<time>`; never reuse a full one."""
    if run_dir is not None:
        run_dir = pathlib.Path(run_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UserError(f"--run-dir {run_dir}: already exists and is not empty; choose a new folder so nothing is overwritten")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    for attempt in range(1000):
        candidate = pathlib.Path(root) / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"{root}: could not create a new run folder; pass --run-dir")


@contextlib.contextmanager
def new_run(run_dir=None, root=DEFAULT_RUNS_ROOT, resume=None):
    """`new_run_dir`, and if the block fails (a wrong --data, say), no folder left behind that it created, runs/ included.

    `resume` names an existing run folder to go on in (`firstnet train --resume`); it is never removed.
    """
    if resume is not None:
        remove_unfinished_writes(pathlib.Path(resume))
        yield pathlib.Path(resume)
        return
    parent = pathlib.Path(run_dir).parent if run_dir else pathlib.Path(root)
    created_parent = not parent.exists()
    folder = new_run_dir(run_dir, root=root)
    try:
        yield folder
    except BaseException:
        for created in (folder, parent) if created_parent else (folder,):
            if created.is_dir() and not any(created.iterdir()):
                created.rmdir()
        raise


def remove_unfinished_writes(folder):
    """Delete the temporary files of writes a crash cut short (`atomic_path`'s `.<name>.<random>.tmp<suffix>`).

    Such a file never replaced the real one, so it holds nothing a run needs; left alone it would only take space.
    """
    for leftover in folder.glob(".*.tmp*"):
        if leftover.is_file():
            leftover.unlink()



class DrawFiguresHere:
    """Draws a run's figures in this process, when asked to finish (the CLI hands `save_run` a helper process instead)."""

    where = "this process"

    def __init__(self):
        self.jobs = []

    def draw(self, figure, path, numbers):
        self.jobs.append((figure, path, numbers))

    def finish(self):
        for figure, path, numbers in self.jobs:
            drawn = (plots.curves_figure(numbers) if figure == "curves" else
                     plots.confusion_figure(numbers if isinstance(numbers, dict) else np.asarray(numbers)))
            plots.save_figure(drawn, path)
        return True


def save_run(run_dir, model, history, metrics, *, figures=None):
    """Write a run folder, each file atomically: model.keras, history.json, curves.png, confusion.png, metrics.json.

    metrics.json is written last: its presence marks the run as complete. `figures` draws the two figures while
    the model is saved (the CLI passes `startup.FigureHelper`, a helper process); if it fails, they are drawn here.
    """
    started = time.perf_counter()
    run_dir = pathlib.Path(run_dir)

    def ask(drawer):
        drawer.draw("curves", run_dir / "curves.png", history)
        names = metrics.get("class_names")
        # Named classes (your own pictures, Fashion-MNIST) label the matrix by name; MNIST's stay digits.
        drawer.draw("confusion", run_dir / "confusion.png", {"matrix": metrics["confusion"], "class_names": names}
                    if names and names != [str(digit) for digit in range(10)] else metrics["confusion"])
        return drawer

    figures = ask(figures or DrawFiguresHere())
    files.save_model(model, run_dir / "model.keras")
    files.write_json(run_dir / "history.json", history)
    if not figures.finish():
        figures = ask(DrawFiguresHere())
        figures.finish()
    metrics["figures_drawn_by"] = figures.where
    metrics["save_seconds"] = time.perf_counter() - started
    metrics["finished_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    process_started = metrics.pop("process_started", None)
    metrics["total_seconds"] = (time.perf_counter() - process_started if process_started is not None else
                                sum(metrics.get(key) or 0.0 for key in ("fit_seconds", "evaluate_seconds", "save_seconds")))
    files.write_json(run_dir / "metrics.json", metrics)


def read_metrics(run_dir):
    path = pathlib.Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_runs(root=DEFAULT_RUNS_ROOT):
    """Finished runs (those with a metrics.json and a model.keras), oldest first."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir()):
        metrics = read_metrics(folder) if folder.is_dir() else None
        if metrics is not None and (folder / "model.keras").is_file():
            runs.append((folder, metrics))
    runs.sort(key=lambda run: (run[1].get("finished_at", ""), str(run[0])))
    return runs


def latest_run(root=DEFAULT_RUNS_ROOT):
    runs = list_runs(root)
    if not runs:
        raise UserError(f"no trained model in {root}/; run `firstnet train` first, or pass --model RUN_DIR")
    return runs[-1][0]


def resolve_model(model=None, root=DEFAULT_RUNS_ROOT):
    """Path of the model.keras to use: the one named (a run folder or a .keras file) or the newest run's."""
    if model is None:
        return latest_run(root) / "model.keras"
    model = pathlib.Path(model)
    return model / "model.keras" if model.is_dir() else model


def project_runs_folder(start=None):
    """The runs/ folder of the project that holds the current folder, where `firstnet runs` looks.

    A notebook runs in notebooks/, but the learner lists runs from the project folder: so a folder named
    notebooks beside a pyproject.toml or a runs/ folder means its parent's runs/; anywhere else, ./runs.
    """
    here = pathlib.Path(start or pathlib.Path.cwd()).resolve()
    parent = here.parent
    if here.name == "notebooks" and ((parent / "pyproject.toml").is_file() or (parent / "runs").is_dir()):
        return parent / "runs"
    return here / "runs"
