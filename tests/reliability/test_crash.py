"""Crash safety: kill -9 and Ctrl-C at seeded random moments of `firstnet train`, and a full disk during a save.

Whatever moment the process dies at, a run folder either looks unfinished (no metrics.json, or an interrupted
one) and resumes to the uninterrupted run's exact numbers, or looks finished and loads; no model.keras is ever
half-written, and an earlier run is never touched. FIRSTNET_RELIABILITY_KILLS sets how many moments are tried
(default 6; docs/reliability.md has a longer run's numbers).
"""

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import as_in_a_terminal, run_firstnet

KILLS = int(os.environ.get("FIRSTNET_RELIABILITY_KILLS", "6"))
RECIPE = ("--seed", "5", "--epochs", "3", "--validation-split", "0.1")


@pytest.fixture(scope="module")
def small_mnist(mnist, tmp_path_factory):
    """A fifth of the real MNIST as an .npz, so that each CLI run takes seconds."""
    path = tmp_path_factory.mktemp("data") / "mnist_small.npz"
    np.savez(path, x_train=mnist.x_train[:12000], y_train=mnist.y_train[:12000], x_test=mnist.x_test[:2000],
             y_test=mnist.y_test[:2000])
    return path


@pytest.fixture(scope="module")
def reference(small_mnist, tmp_path_factory):
    """The uninterrupted run, and how long the whole command took (the window the kills are drawn from)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    started = time.perf_counter()
    done = run_firstnet("train", *RECIPE, "--data", small_mnist, "--run-dir", run_dir, "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr
    return run_dir, time.perf_counter() - started


def digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def same_numbers(run_dir, reference_dir):
    ours, theirs = (json.loads((folder / "metrics.json").read_text()) for folder in (run_dir, reference_dir))
    for key in ("test_accuracy", "test_loss", "confusion", "train_loss", "epochs_completed"):
        assert ours[key] == theirs[key], key
    assert (run_dir / "history.json").read_text() == (reference_dir / "history.json").read_text()


def check_invariants(run_dir):
    """What any moment of death must leave: a finished-looking run loads; a model.keras is whole; returns the state."""
    from firstnet import checkpoints, model as firstnet_model, runs

    if not run_dir.exists():
        return "nothing"
    metrics = runs.read_metrics(run_dir)
    if (run_dir / "model.keras").exists():
        firstnet_model.load_model(run_dir / "model.keras")  # Raises if it were half-written.
    if metrics is not None:
        assert (run_dir / "model.keras").is_file(), "metrics.json without model.keras"
        if not metrics["interrupted"]:
            return "finished"
    if (run_dir / checkpoints.FILE).exists():
        assert checkpoints.read_meta(run_dir) is not None, "an unreadable checkpoint"
        return "resumable"
    assert metrics is None and not any(run_dir.iterdir()), f"a run neither finished nor resumable: {digest(run_dir)}"
    return "nothing"


@pytest.mark.slow
def test_kill_at_random_moments_never_breaks_a_run(small_mnist, reference, tmp_path):
    reference_dir, seconds = reference
    earlier = tmp_path / "runs" / "earlier"
    earlier.mkdir(parents=True)
    for path in reference_dir.iterdir():
        (earlier / path.name).write_bytes(path.read_bytes())
    before = digest(earlier)
    chooser = random.Random(20261201)
    outcomes = []
    for attempt in range(KILLS):
        run_dir = tmp_path / "runs" / f"attempt{attempt}"
        how = signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT
        process = subprocess.Popen([sys.executable, "-m", "firstnet", "train", *RECIPE, "--data", str(small_mnist),
                                    "--run-dir", str(run_dir), "--quiet"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
        # Most moments are drawn from training and saving (after the first checkpoint appears), some from start-up.
        if attempt % 3 != 2:
            deadline = time.monotonic() + 120
            while not (run_dir / "checkpoint.npz").exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(chooser.uniform(0.0, seconds / 2))
        else:
            time.sleep(chooser.uniform(0.2, seconds))
        process.send_signal(how)
        _, stderr = process.communicate(timeout=120)
        state = check_invariants(run_dir)
        outcomes.append((how.name, process.returncode, state))
        if how == signal.SIGINT and process.returncode not in (0, 130):
            pytest.fail(f"Ctrl-C gave exit code {process.returncode}: {stderr[-400:]}")
        if state == "resumable":
            listed = run_firstnet("runs", "--root", tmp_path / "runs")
            assert f"resume: firstnet train --resume {run_dir}" in listed.stdout
            resumed = run_firstnet("train", "--resume", run_dir, "--quiet", timeout=300)
            assert resumed.returncode == 0, resumed.stderr
            state = check_invariants(run_dir)
            assert state == "finished"
            # What a killed save had half written is gone once the run goes on.
            assert not list(run_dir.glob(".*.tmp*")), sorted(path.name for path in run_dir.iterdir())
        if state == "finished":
            same_numbers(run_dir, reference_dir)
        assert digest(earlier) == before, "an earlier run was touched"
    print("outcomes:", outcomes)


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_old_file(trained_run, tmp_path, monkeypatch):
    from firstnet import files
    from firstnet.errors import UserError

    target = tmp_path / "model.keras"
    files.save_model(trained_run.model, target)
    before = target.read_bytes()

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    for write in (lambda: files.save_model(trained_run.model, target), lambda: files.write_json(target, {"a": 1})):
        with pytest.raises(UserError, match="the disk is full") as refused:
            write()
        assert "\n" not in str(refused.value)
        assert target.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras"], "a temporary file was left"


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 4 MB file system (tmpfs), where the root may mount one; skipped elsewhere (the test above still runs)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the ENOSPC monkeypatch test covers the code path")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_really_full_disk_stops_train_in_one_line(tiny_disk, small_mnist, trained_run):
    from firstnet import files

    # A model.keras already there (3 MB of the 4): saving another beside it cannot fit.
    target = tiny_disk / "model.keras"
    files.save_model(trained_run.model, target)
    before = target.read_bytes()
    done = run_firstnet("train", *RECIPE, "--data", small_mnist, "--run-dir", tiny_disk / "run", "--quiet",
                        timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the disk is full" in lines[0], done.stderr
    assert target.read_bytes() == before
