"""What a run needs to go on after Ctrl-C or a crash: written atomically with files.atomic_path, read back with checks.

A checkpoint is one file, `checkpoint.npz` in the run folder: the model's and the optimizer's variables, where
training stands (the epoch, the steps done in it, the epoch's running totals), the shuffling generator's state at
the start of that epoch (so the same order of digits is replayed), the history so far, the run's recipe and seed,
the versions that decide the numbers and a fingerprint of the data. The loops say when there is something to
keep (a "checkpoint" event: at the start, at each epoch's end, and at Ctrl-C); `Writer` keeps it.

The file is a plain NumPy archive read with `allow_pickle=False`: reading one runs no code. It is replaced in one
rename, so a kill at any moment leaves the previous checkpoint or the new one, never half of one.
"""

import dataclasses
import hashlib
import json
import pathlib

import numpy as np

from firstnet import files, runs, versions
from firstnet.errors import UserError, first_line

FILE = "checkpoint.npz"
FORMAT = 1
# The variables of a checkpoint, by group, in the order `model.stateless_call` and `optimizer.stateless_apply` take.
GROUPS = ("trainable", "non_trainable", "optimizer")
# Versions that must be the same for a resumed run to compute what the uninterrupted one would have.
DECIDING = ("python", "firstnet", "keras", "numpy", "jax", "jaxlib", "torch", "tensorflow", "backend")
# The settings a checkpoint keeps; a resumed run takes them all from it.
RECIPE = ("model", "augment", "dataset", "epochs", "batch_size", "hidden_units", "optimizer", "learning_rate",
          "learning_rate_schedule", "validation_split", "seed", "loop", "data")


def deciding_versions():
    """The versions here that decide a run's numbers, with the Keras backend that computes them."""
    import keras

    return {name: value for name, value in versions.installed().items() if name in DECIDING} | {
        "backend": keras.backend.backend()}


def fingerprint(data):
    """sha256 of the four arrays' dtypes, shapes and bytes: the same digits in the same order, or a different run."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class Writer:
    """A watcher that writes each "checkpoint" event's state into `run_dir/checkpoint.npz`, atomically.

    It keeps the history from the epoch-end events (starting from a resumed checkpoint's), and writes only the
    epochs finished before the checkpoint's position, so that an interrupt anywhere never counts an epoch twice.
    """

    def __init__(self, run_dir, config, seed, data, resumed=None):
        self.path = pathlib.Path(run_dir) / FILE
        # The data as found (FIRSTNET_DATA or keras's cache, when no --data was given): resumed from the same file.
        self.recipe = {name: getattr(config, name) for name in RECIPE} | {"seed": seed, "data": config.data or data.path}
        self.data = {"fingerprint": resumed.meta["data"]["fingerprint"] if resumed else fingerprint(data),
                     "source": data.source, "path": data.path}
        self.history = {"loss": [], "accuracy": [],
                        **{key: list(values) for key, values in (resumed.history if resumed else {}).items()}}
        self.resumes = (resumed.meta.get("resumes", 0) + 1) if resumed else 0
        self.versions = deciding_versions()

    def __call__(self, event):
        if event.kind == "epoch_end":
            for key, value in event.logs.items():
                self.history.setdefault(key, []).append(float(value))
        elif event.kind == "checkpoint":
            self.write(event.epoch, event.step, event.steps, event.state())

    def write(self, epoch, step, steps, state):
        meta = {"format": FORMAT, "epoch": epoch, "step": step, "steps": steps, "recipe": self.recipe,
                "loop": state["loop"], "totals": [float(total) for total in state.get("totals") or []],
                "shuffling": state["shuffling"], "extra": state.get("extra", {}), "data": self.data,
                "versions": self.versions,
                "history": {key: values[:epoch - 1] for key, values in self.history.items()},
                "resumes": self.resumes}
        arrays = {f"{group}_{index}": np.asarray(value) for group in GROUPS
                  for index, value in enumerate(state["variables"][group])}
        # The totals as float32 bits: a resumed epoch's running means continue from exactly these sums.
        arrays["totals"] = np.asarray(state.get("totals") or [], dtype=np.float32)
        with files.atomic_path(self.path) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read back: `meta` (where training stands, the recipe, versions, data) and the variables."""

    run_dir: pathlib.Path
    meta: dict
    variables: dict
    totals: tuple

    def __getattr__(self, name):
        # Where training stands reads as attributes: the epoch, the steps done in it, the history, the shuffling.
        if name in ("epoch", "step", "history", "shuffling"):
            return self.meta[name]
        raise AttributeError(name)

    def check_shapes(self, model):
        """Refuse, before any training, a checkpoint whose variables do not fit `model` (a UserError naming them)."""
        for group, variables in (("trainable", model.trainable_variables),
                                 ("non_trainable", model.non_trainable_variables)):
            values = self.variables[group]
            shapes = [tuple(variable.shape) for variable in variables]
            if [tuple(value.shape) for value in values] != shapes:
                found = ", ".join(str(tuple(value.shape)) for value in values[:4]) or "none"
                raise UserError(f"{self.run_dir}: cannot resume: its checkpoint.npz holds {group} weights of shapes "
                                f"{found}, and the network its recipe builds needs "
                                f"{', '.join(map(str, shapes[:4]))}; the file was damaged or changed: start a new run "
                                "with `firstnet train`")

    def restore(self, model):
        """Put the checkpoint's variables into `model` and its optimizer (built first), refusing other shapes."""
        self.check_shapes(model)
        model.optimizer.build(model.trainable_variables)
        groups = {"trainable": model.trainable_variables, "non_trainable": model.non_trainable_variables,
                  "optimizer": model.optimizer.variables}
        for group, variables in groups.items():
            values = self.variables[group]
            shapes = [tuple(variable.shape) for variable in variables]
            if [value.shape for value in values] != shapes:
                raise UserError(f"{self.run_dir}: cannot resume: its checkpoint holds other {group} variables than "
                                "this network has; start a new run with `firstnet train`")
            for variable, value in zip(variables, values):
                variable.assign(value)


def path_of(run_dir):
    return pathlib.Path(run_dir) / FILE


def read_meta(run_dir):
    """The checkpoint's description alone (no variables), checked; None when there is none or it cannot be used."""
    try:
        return _meta(path_of(run_dir))
    except (UserError, OSError):
        return None


def _meta(path):
    """The meta of the checkpoint at `path`, bounded in size and checked against its schema (run_files.py)."""
    from firstnet import run_files
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not run_files.meta_size_ok(archive):
                raise run_files.BadRunFile(f"{path}: meta is far too large; the file was damaged or changed")
            meta = json.loads(archive["meta"].tobytes())
    except run_files.BadRunFile:
        raise
    except OSError:
        raise
    except Exception as error:  # Truncated, not a zip, a missing entry, bad JSON: all one answer.
        raise run_files.BadRunFile(f"{path}: damaged ({first_line(error)[:120]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise run_files.BadRunFile(f"{path}: format: {found!r}, expected {FORMAT}")
    return run_files.check_meta(meta, path)


def read(run_dir):
    """The checkpoint of `run_dir`, or a UserError saying in one line why there is nothing to resume."""
    from firstnet import run_files

    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir() or run_dir.is_symlink():
        raise UserError(f"--resume {run_dir}: no such run folder; `firstnet runs` lists the unfinished ones")
    if not path_of(run_dir).is_file() or path_of(run_dir).is_symlink():
        metrics = _metrics_or_none(run_dir)
        if metrics is not None and not metrics.get("interrupted"):
            raise UserError(f"--resume {run_dir}: this run is finished; nothing to resume")
        raise UserError(f"--resume {run_dir}: no checkpoint.npz here, so it cannot be resumed; start a new run with "
                        "`firstnet train`")
    try:
        meta = _meta(path_of(run_dir))
        with np.load(path_of(run_dir), allow_pickle=False) as archive:
            variables = {group: [] for group in GROUPS}
            for group in GROUPS:
                while f"{group}_{len(variables[group])}" in archive.files:
                    variables[group].append(archive[f"{group}_{len(variables[group])}"])
            totals = tuple(np.float32(total) for total in archive["totals"])
    except run_files.BadRunFile as error:
        detail = str(error).removeprefix(f"{path_of(run_dir)}: ").split(" (the file was")[0]
        raise UserError(f"--resume {run_dir}: its checkpoint.npz is damaged or was changed ({detail}); start a new "
                        "run with `firstnet train`") from None
    except Exception as error:  # A variable cut short, a missing entry: all one answer.
        raise UserError(f"--resume {run_dir}: its checkpoint.npz is damaged ({first_line(error)[:120]}); start a "
                        "new run with `firstnet train`") from None
    if meta["epoch"] > meta["recipe"]["epochs"] + 1 or meta["step"] > meta["steps"]:
        raise UserError(f"--resume {run_dir}: cannot resume: its checkpoint.npz says epoch {meta['epoch']}, step "
                        f"{meta['step']} of a {meta['recipe']['epochs']}-epoch run of {meta['steps']} steps")
    return Checkpoint(run_dir=run_dir, meta=meta, variables=variables, totals=totals)


def _metrics_or_none(run_dir):
    try:
        return runs.read_metrics(run_dir)
    except UserError:
        return None


def resumed_config(config):
    """The TrainConfig of the run that `config.resume` names: its own recipe, seed and folder."""
    meta = read(config.resume).meta
    # A checkpoint from before the model families and named datasets trained the tutorial's network on MNIST.
    recipe = {name: meta["recipe"].get(name, {"model": "dense", "augment": "none"}.get(name)) for name in RECIPE}
    recipe["loop"] = meta["loop"]  # The loop that really ran, which a fallback may have changed.
    return dataclasses.replace(config, **recipe, run_dir=str(config.resume))


def load(run_dir, data):
    """The checkpoint of `run_dir`, checked against the data and the versions here; a UserError says why not."""
    checkpoint = read(run_dir)
    saved = checkpoint.meta["versions"]
    here = deciding_versions()
    for name in DECIDING:
        if saved.get(name) != here.get(name):
            raise UserError(f"--resume {run_dir}: cannot resume: it was trained with {name} {saved.get(name)} and "
                            f"this is {name} {here.get(name)}, which may compute other numbers; start a new run "
                            f"with `firstnet train --seed {checkpoint.meta['recipe']['seed']}`")
    if fingerprint(data) != checkpoint.meta["data"]["fingerprint"]:
        raise UserError(f"--resume {run_dir}: cannot resume: the training data has changed since the run began "
                        f"({data.source} is not the data it trained on); start a new run with `firstnet train`")
    return checkpoint


def finish(run_dir):
    """A finished run needs no checkpoint: remove it (after metrics.json is written, so a kill between is harmless)."""
    path_of(run_dir).unlink(missing_ok=True)


def where(meta):
    """Where an unfinished run stands, in words: "epoch 3 of 5, step 200 of 469"."""
    epochs = meta["recipe"]["epochs"]
    if meta["epoch"] > epochs:
        return f"all {epochs} epochs trained, not yet saved"
    return f"epoch {meta['epoch']} of {epochs}, step {meta['step']} of {meta['steps']}"


def unfinished_runs(root=runs.DEFAULT_RUNS_ROOT):
    """Runs that can be resumed (a checkpoint, and no metrics.json or an interrupted one), oldest first."""
    root = pathlib.Path(root)
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.is_symlink() or not path_of(folder).is_file():
            continue
        metrics = _metrics_or_none(folder)
        if metrics is not None and not metrics.get("interrupted"):
            continue
        meta = read_meta(folder)
        found.append((folder, meta))
    return found


def unfinished_lines(root=runs.DEFAULT_RUNS_ROOT):
    """`firstnet runs`'s lines about unfinished runs, each with the command that resumes it."""
    lines = []
    for folder, meta in unfinished_runs(root):
        if meta is None:
            lines.append(f"  {folder}: its checkpoint cannot be read; it cannot be resumed")
        else:
            lines.append(f"  {folder}: {where(meta)}; resume: firstnet train --resume {folder}")
    return ["unfinished runs:", *lines] if lines else []
