"""Resume, exactly: a run stopped by Ctrl-C and taken up again ends with the same bits as one never stopped.

The reference is the same seed's uninterrupted run, trained here in the same process on the same digits. Both
loops are checked, at several seeded stopping points: the compiled loop from the step reached, model.fit from the
epoch's start (it cannot start mid-epoch; the checkpoint it keeps is the last epoch boundary).
"""

import dataclasses
import json
import random

import numpy as np
import pytest

from conftest import BACKEND

from firstnet import checkpoints, runs, train, versions
from firstnet.errors import UserError

# A fifth of MNIST keeps each run to a second or two; the checks are about the bookkeeping, not the accuracy.
TRAIN_DIGITS, TEST_DIGITS = 12000, 2000


@pytest.fixture(scope="module")
def digits(mnist):
    return dataclasses.replace(mnist, x_train=mnist.x_train[:TRAIN_DIGITS], y_train=mnist.y_train[:TRAIN_DIGITS],
                               x_test=mnist.x_test[:TEST_DIGITS], y_test=mnist.y_test[:TEST_DIGITS])


class StopAt:
    """A watcher that presses Ctrl-C (raises KeyboardInterrupt) at the first step event at or past (epoch, step)."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def __call__(self, event):
        if event.kind == "step" and (event.epoch, event.step) >= (self.epoch, self.step):
            raise KeyboardInterrupt


def recipe(tmp_path, name, loop, **extra):
    return train.TrainConfig(seed=11, epochs=3, loop=loop, validation_split=0.1, verbose=0,
                             run_dir=str(tmp_path / name), **extra)


def assert_same_run(expected, got):
    assert got.history == expected.history
    for key in ("test_accuracy", "test_loss", "train_loss", "train_accuracy", "confusion", "epochs_completed"):
        assert got.metrics[key] == expected.metrics[key], key
    for before, after in zip(expected.model.get_weights(), got.model.get_weights()):
        assert np.array_equal(before, after)


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    """Each loop's reference run, trained once."""
    root = tmp_path_factory.mktemp("reference")
    # The compiled loop is JAX's; elsewhere only model.fit runs.
    loops = ("compiled", "fit") if BACKEND == "jax" else ("fit",)
    return {loop: train.train(recipe(root, loop, loop), data=digits) for loop in loops}


@pytest.mark.parametrize("loop", [pytest.param("compiled", marks=pytest.mark.backend("jax")), "fit"])
def test_resume_after_ctrl_c_is_bit_for_bit(loop, digits, uninterrupted, tmp_path):
    # Two seeded stopping points per loop, the second one stopping the resumed run again: resumes chain.
    chooser = random.Random(f"resume-{loop}")
    steps = -(-int(TRAIN_DIGITS * 0.9) // 128)
    first = StopAt(chooser.randint(1, 2), chooser.randint(1, steps))
    stopped = train.train(recipe(tmp_path, "run", loop), data=digits, watchers=[first])
    assert stopped.metrics["interrupted"]
    meta = checkpoints.read_meta(tmp_path / "run")
    assert meta["loop"] == loop and meta["recipe"]["seed"] == 11
    if loop == "compiled":
        assert (meta["epoch"], meta["step"]) >= (first.epoch, min(first.step, steps)) and meta["step"] > 0
    else:
        assert meta["step"] == 0 and meta["epoch"] == first.epoch
    assert [folder for folder, _ in checkpoints.unfinished_runs(tmp_path)] == [tmp_path / "run"]

    again = StopAt(3, chooser.randint(1, steps))
    second = train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits, watchers=[again])
    assert second.metrics["interrupted"]
    finished = train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits)
    assert not finished.metrics["interrupted"] and finished.metrics["resumed_from"]["epoch"] == 3
    assert_same_run(uninterrupted[loop], finished)
    # The finished run is an ordinary one: no checkpoint left, listed as finished, refused as a resume.
    assert not (tmp_path / "run" / checkpoints.FILE).exists()
    assert checkpoints.unfinished_runs(tmp_path) == []
    assert [folder for folder, _ in runs.list_runs(tmp_path)] == [tmp_path / "run"]
    with pytest.raises(UserError, match="finished; nothing to resume"):
        train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits)


class CrashAt:
    """A watcher that stops the process abruptly (SystemExit, which no Ctrl-C handler sees) at a step event."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def __call__(self, event):
        if event.kind == "step" and (event.epoch, event.step) >= (self.epoch, self.step):
            raise SystemExit("crashed")


@pytest.mark.parametrize("loop", [pytest.param("compiled", marks=pytest.mark.backend("jax")), "fit"])
@pytest.mark.parametrize("epoch", [1, 3])
def test_a_crash_resumes_from_the_last_checkpoint_exactly(loop, epoch, digits, uninterrupted, tmp_path):
    """A crash in epoch 1 leaves the checkpoint written at the start; in epoch 3, the one of epoch 2's end."""
    with pytest.raises(SystemExit):
        train.train(recipe(tmp_path, "run", loop), data=digits, watchers=[CrashAt(epoch, 1)])
    assert not (tmp_path / "run" / "metrics.json").exists()
    meta = checkpoints.read_meta(tmp_path / "run")
    assert (meta["epoch"], meta["step"]) == (epoch, 0)
    assert len(meta["history"]["loss"]) == epoch - 1
    lines = checkpoints.unfinished_lines(tmp_path)
    assert lines[1].endswith(f"epoch {epoch} of 3, step 0 of {meta['steps']}; resume: firstnet train --resume "
                             f"{tmp_path / 'run'}")
    resumed = train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits)
    assert_same_run(uninterrupted[loop], resumed)


@pytest.mark.slow
@pytest.mark.backend("jax")  # A checkpoint mid-epoch: the compiled loop's.
def test_changed_data_or_versions_refuse_in_one_line(digits, tmp_path, monkeypatch):
    train.train(recipe(tmp_path, "run", "compiled"), data=digits, watchers=[StopAt(1, 50)])
    changed = dataclasses.replace(digits, x_train=digits.x_train.copy())
    changed.x_train[0, 0, 0] ^= 1
    with pytest.raises(UserError, match="the training data has changed") as refused:
        train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=changed)
    assert "\n" not in str(refused.value)
    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda: {**real(), "jax": "0.0.1"})
    with pytest.raises(UserError, match=r"trained with jax .* and this is jax 0\.0\.1") as refused:
        train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits)
    assert "\n" not in str(refused.value)
    # Nothing was touched by the refusals: the checkpoint still resumes.
    assert checkpoints.read_meta(tmp_path / "run")["step"] == 50


@pytest.mark.slow
@pytest.mark.backend("jax")  # A checkpoint mid-epoch: the compiled loop's.
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "other_format"])
def test_a_damaged_checkpoint_is_one_line(damage, digits, tmp_path):
    train.train(recipe(tmp_path, "run", "compiled"), data=digits, watchers=[StopAt(1, 50)])
    path = tmp_path / "run" / checkpoints.FILE
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays["meta"].tobytes())
        arrays["meta"] = np.frombuffer(json.dumps({**meta, "format": 99}).encode(), dtype=np.uint8)
        with open(path, "wb") as stream:
            np.savez(stream, **arrays)
    with pytest.raises(UserError, match="checkpoint.npz is damaged") as refused:
        train.train(train.TrainConfig(resume=str(tmp_path / "run"), verbose=0), data=digits)
    assert "\n" not in str(refused.value)


def test_nothing_to_resume(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        train.train(train.TrainConfig(resume=str(tmp_path / "nowhere"), verbose=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint.npz here"):
        train.train(train.TrainConfig(resume=str(tmp_path / "empty"), verbose=0))


def test_resume_removes_what_a_killed_save_half_wrote(tmp_path):
    from firstnet import runs

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".model.abc123.tmp.keras").write_bytes(b"half a zip")
    (folder / "model.keras").write_bytes(b"the real one")
    with runs.new_run(resume=str(folder)) as run_dir:
        assert run_dir == folder
    assert sorted(path.name for path in folder.iterdir()) == ["model.keras"]
    assert (folder / "model.keras").read_bytes() == b"the real one"
