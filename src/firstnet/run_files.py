"""A run folder's files read as data, never trusted: one schema each for metrics.json, history.json and checkpoint.npz's meta.

Anything in a run folder may have been edited, truncated or crafted: a reader that trusted it would crash with a
traceback far from the file (`class_names: 5` in predict, `hidden_units: 10**12` in the network's first layer). So
every reader goes through `read_metrics`, `read_history` or `check_meta` here, and a file that does not fit its
schema is one `BadRunFile` line that names the file and the field. Sizes are bounded before anything is allocated.
The schemas are strict (no "5" for 5, no "abc" for a list) and let unknown fields through, so that runs saved by a
newer firstnet still read.
"""

import json
import pathlib
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from firstnet.choices import AUGMENTATIONS, LOOPS, MAX_HIDDEN_UNITS, MODELS, OPTIMIZERS, SCHEDULES
from firstnet.errors import UserError

# Far beyond any run firstnet makes, far below what would exhaust memory (MAX_HIDDEN_UNITS too, in choices.py):
# a checkpoint or a flag asking for more is refused before the network is built.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000
MAX_CLASSES = 1_000
MAX_SIDE = 4096
MAX_FILE_BYTES = 32 * 1024 * 1024  # metrics.json, history.json and a checkpoint's meta are a few kB to a few MB.

Text = Annotated[str, Field(max_length=4096)]
Name = Annotated[str, Field(max_length=256)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]


class BadRunFile(UserError):
    """A run folder's file that is damaged or was changed: its message names the file and the field."""


class Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Metrics(Schema):
    """metrics.json: what `firstnet runs`, `predict`, `evaluate`, `look` and the page read of a finished run."""

    test_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    test_loss: float | None = None
    train_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    train_loss: float | None = None
    epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] | None = None
    epochs_completed: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] | None = None
    interrupted: bool = False
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] | None = None
    hidden_units: Annotated[int, Field(ge=1, le=MAX_HIDDEN_UNITS)] | None = None
    optimizer: Name | None = None
    learning_rate: float | None = None
    learning_rate_schedule: Name = "constant"
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.0
    seed: int | None = None
    loop: Name | None = None
    training_loop: Text | None = None
    finished_at: Name | None = None
    started_at: Name | None = None
    total_seconds: float | None = None
    model: Literal[MODELS] = "dense"
    augment: Literal[AUGMENTATIONS] | None = None
    dataset: Name | None = None
    data_source: Text | None = None
    data_path: Text | None = None
    data_full: bool | None = None
    class_names: Annotated[list[Name], Field(min_length=1, max_length=MAX_CLASSES)] | None = None
    image_shape: Annotated[list[Side], Field(min_length=1, max_length=3)] | None = None
    preparation: Name | None = None
    confusion: Annotated[list[Annotated[list[int], Field(max_length=MAX_CLASSES)]], Field(max_length=MAX_CLASSES)] | None = None
    finetune: dict | None = None
    versions: dict[Name, Text | None] | None = None
    # A run that did not learn (train.py's `learned`): false, with the reason in words.
    learned: bool | None = None
    why: Text | None = None
    # A notebook's experiment: listed, but never "the newest run" that predict and serve answer with.
    experiment: bool = False

    @field_validator("preparation")
    @classmethod
    def _known_preparation(cls, value):
        if value is not None and value != "mnist" and parse_preparation(value) is None:
            raise ValueError("not a preparation firstnet writes (\"mnist\" or \"resized to WxH, grey|colour\")")
        return value


class Data(Schema):
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    source: Text
    path: Text | None = None


class Recipe(Schema):
    model: Literal[MODELS] = "dense"
    augment: Literal[AUGMENTATIONS] = "none"
    dataset: Name | None = None
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
    hidden_units: Annotated[int, Field(ge=1, le=MAX_HIDDEN_UNITS)]
    optimizer: Literal[OPTIMIZERS]
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    learning_rate_schedule: Literal[SCHEDULES] = "constant"
    validation_split: Annotated[float, Field(ge=0, lt=1)] = 0.0
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    loop: Literal[LOOPS] | None = None
    data: Text | None = None


class CheckpointMeta(Schema):
    """checkpoint.npz's "meta": where training stands, the recipe, the shuffling, the versions, the data."""

    format: Literal[1]
    epoch: Annotated[int, Field(ge=1, le=MAX_EPOCHS + 1)]
    step: Annotated[int, Field(ge=0)]
    steps: Annotated[int, Field(ge=1)]
    recipe: Recipe
    loop: Literal[LOOPS]
    totals: Annotated[list[float], Field(max_length=8)] = []
    shuffling: dict
    extra: dict = {}
    data: Data
    versions: dict[Name, Text | None]
    history: dict[Name, Annotated[list[float], Field(max_length=MAX_EPOCHS)]] = {}
    resumes: Annotated[int, Field(ge=0)] = 0

    @field_validator("extra")
    @classmethod
    def _widths(cls, value):
        widths = value.get("widths", [])
        if not isinstance(widths, list) or not all(type(width) is int and 0 < width <= 10**6 for width in widths):
            raise ValueError("widths must be a list of whole numbers")
        return value


class History(Schema):
    """history.json: each metric's value per epoch (a diverged run's loss may be NaN, so NaN is allowed)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    values: dict[Name, Annotated[list[float], Field(max_length=MAX_EPOCHS)]]


def parse_preparation(preparation):
    """(height, width) or (height, width, 3) from "resized to WxH, grey|colour" (data/folders.py), or None."""
    found = re.fullmatch(r"resized to (\d{1,5})x(\d{1,5}), (grey|colour)((?:, [a-z ]+)*)", preparation or "")
    if not found:
        return None
    width, height = int(found[1]), int(found[2])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        return None
    return (height, width, 3) if found[3] == "colour" else (height, width)


def _printable(name):
    """A field's name from a file as one short line: a key may hold newlines or control characters."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in name)[:120]


def _problem(path, error):
    """A ValidationError as one line: the file, the field (dotted), what is wrong."""
    first = error.errors()[0]
    where = _printable(".".join(str(part) for part in first["loc"])) or "the whole file"
    return BadRunFile(f"{path}: {where}: {first['msg']} (the file was damaged or changed; train the run again, or "
                      "move the folder out of runs/)")


def _load_json(path):
    """The JSON in `path`, or None when it is missing; a BadRunFile when it is too large or not JSON."""
    path = pathlib.Path(path)
    if path.is_symlink():
        raise BadRunFile(f"{path}: is a link; a run's files must be files in its folder")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BadRunFile(f"{path}: cannot be read ({error.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise BadRunFile(f"{path}: {size:,} bytes is far too large for this file; it was damaged or changed")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRunFile(f"{path}: not valid JSON ({str(error)[:80]}); the file was damaged or cut short") from None
    except RecursionError:
        raise BadRunFile(f"{path}: nested too deeply to be this file; it was damaged or changed") from None
    except OSError as error:
        raise BadRunFile(f"{path}: cannot be read ({error.strerror})") from None


def read_metrics(run_dir):
    """metrics.json of `run_dir` as a dict, checked; None when there is none; a BadRunFile when it does not fit."""
    path = pathlib.Path(run_dir) / "metrics.json"
    found = _load_json(path)
    if found is None:
        return None
    try:
        Metrics.model_validate(found)
    except ValidationError as error:
        raise _problem(path, error) from None
    return found


def read_history(run_dir):
    """history.json of `run_dir` as {metric: [one value per epoch]}, checked; None when there is none."""
    path = pathlib.Path(run_dir) / "history.json"
    found = _load_json(path)
    if found is None:
        return None
    try:
        History.model_validate({"values": found})
    except ValidationError as error:
        error_copy = error.errors()[0]
        error_copy["loc"] = error_copy["loc"][1:]
        raise BadRunFile(f"{path}: {_printable('.'.join(map(str, error_copy['loc']))) or 'the whole file'}: {error_copy['msg']} "
                         "(the file was damaged or changed)") from None
    return found


def check_meta(meta, path):
    """A checkpoint's meta (already parsed JSON), checked; the shuffling state must be one a generator takes."""
    try:
        CheckpointMeta.model_validate(meta)
    except ValidationError as error:
        raise _problem(path, error) from None
    if not _generator_takes(meta["shuffling"], meta["loop"]):
        raise BadRunFile(f"{path}: shuffling: not a state of NumPy's random generator (the file was damaged or changed)")
    return meta


def _generator_takes(state, loop):
    """True when `state` can be put into a throwaway generator of the kind the loop shuffles with."""
    try:
        if loop == "compiled":
            np.random.default_rng().bit_generator.state = state
        else:
            numpy_state = {key: value for key, value in state.items() if key != "torch"}
            inner = numpy_state["state"]
            numpy_state["state"] = {"key": np.asarray(inner["key"], dtype=np.uint32), "pos": int(inner["pos"])}
            np.random.RandomState().set_state(numpy_state)
        return True
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError):
        return False


def meta_size_ok(archive):
    """True when the checkpoint's meta entry is small enough to read (checked in the zip's directory first)."""
    try:
        return archive.zip.getinfo("meta.npy").file_size <= MAX_FILE_BYTES
    except (KeyError, AttributeError):
        return True  # A missing meta is said by the reader itself.
