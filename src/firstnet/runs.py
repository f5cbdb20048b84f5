"""Run folders: a new one made safely, a finished run saved whole, and runs found and read back."""

import contextlib
import datetime
import pathlib
import sys
import time

import numpy as np

from firstnet import files, names, plots
from firstnet.errors import UserError
from firstnet.files import DEFAULT_RUNS_ROOT

def new_run_dir(run_dir=None, root=DEFAULT_RUNS_ROOT):
    """Create a fresh run folder: `run_dir` if given, else `runs/<date>_<time>`; never reuse an existing one.

    The folder is made by one `mkdir`, which the file system lets only one process win: a second
    `firstnet train --run-dir same` started at the same moment gets "already exists", never the same folder.
    """
    if run_dir is not None:
        run_dir = pathlib.Path(run_dir)
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            if _claim(run_dir):
                return run_dir
            full = not run_dir.is_dir() or any(run_dir.iterdir())
            raise UserError(f"--run-dir {run_dir}: already exists{' and is not empty' if full else ''}; choose a new "
                            "folder so nothing is overwritten") from None
        except OSError as error:
            raise UserError(f"--run-dir {run_dir}: cannot create it ({error.strerror}); choose a folder you can "
                            "write to") from None
        return run_dir
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    for attempt in range(1000):
        candidate = pathlib.Path(root) / (stamp if attempt == 0 else f"{stamp}_{attempt}")
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise UserError(f"{root}: cannot create a run folder there ({error.strerror}); run firstnet from a "
                            "folder you can write to, or pass --run-dir DIR") from None
    raise UserError(f"{root}: could not create a new run folder; pass --run-dir")


RESERVED = ".reserved"


def reserve_run_dir(root=DEFAULT_RUNS_ROOT):
    """A new run folder made for a child process to train in (the page's runs): `new_run_dir`, marked as reserved.

    The child names it as its --run-dir; removing the mark is how it takes the folder, which only one process can
    do, so a reserved folder is still never shared.
    """
    folder = new_run_dir(root=root)
    (folder / RESERVED).touch()
    return folder


def release_reserved(folder):
    """Remove a reserved folder that no child took (it failed to start): its mark, then the folder if empty."""
    folder = pathlib.Path(folder)
    (folder / RESERVED).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _claim(folder):
    """True when `folder` was reserved (`reserve_run_dir`) and this process took it, by removing the mark."""
    try:
        if sorted(entry.name for entry in folder.iterdir()) != [RESERVED]:
            return False
        (folder / RESERVED).unlink()
        return True
    except OSError:
        return False


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
    """Delete the temporary files of writes a crash cut short (files.remove_leftovers)."""
    files.remove_leftovers(folder)



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
    """metrics.json of a run, checked (run_files.py): None when there is none, a BadRunFile (one line) when damaged."""
    from firstnet import run_files  # pydantic: imported when a run is read, not on train's way to its first step.

    return run_files.read_metrics(run_dir)


NOTED = set()


def note_once(line, announce=None):
    """Say `line` once per process: the server lists runs at every request, and one note about a folder is enough."""
    if line not in NOTED:
        NOTED.add(line)
        (announce or (lambda text: print(text, file=sys.stderr)))(line)


def list_runs(root=DEFAULT_RUNS_ROOT, announce=None):
    """Finished runs (those with a metrics.json and a model.keras), oldest first.

    A folder whose metrics.json is damaged, or a link (which may lead out of runs/), is skipped with a note, so that
    one bad folder never hides the others.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted(root.iterdir()):
        if folder.is_symlink():
            note_once(f"firstnet: skipped {names.shown(folder)}: a link, and runs are read only from folders in "
                      f"{names.shown(root)}", announce)
            continue
        try:
            metrics = read_metrics(folder) if folder.is_dir() else None
        except UserError as error:
            note_once(f"firstnet: skipped a run folder: {error}", announce)
            continue
        if metrics is not None and (folder / "model.keras").is_file() and not (folder / "model.keras").is_symlink():
            runs.append((folder, metrics))
    runs.sort(key=lambda run: (run[1].get("finished_at") or "", str(run[0])))
    return runs


def is_finished(metrics):
    """A run that trained to its end: not stopped by Ctrl-C, at least one epoch, and not a notebook's experiment."""
    completed = metrics.get("epochs_completed", metrics.get("epochs"))
    return not metrics.get("interrupted") and not metrics.get("experiment") and (completed is None or completed >= 1)


def latest_run(root=DEFAULT_RUNS_ROOT):
    """The newest finished run (`is_finished`): what predict, evaluate, look and serve answer with unless told."""
    found = list_runs(root)
    finished = [folder for folder, metrics in found if is_finished(metrics)]
    if not finished:
        others = f" ({len(found)} stopped early or marked as experiments: name one)" if found else ""
        raise UserError(f"no trained model in {root}/{others}; run `firstnet train` first, or pass --model RUN_DIR")
    return finished[-1]


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
