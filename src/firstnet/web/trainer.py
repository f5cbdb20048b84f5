"""Train a model from the page: `firstnet train` with the tutorial's recipe in a child process, its progress parsed.

A child process keeps the web server answering while the two layers learn, and its progress bar (Keras prints
"Epoch k/n" and "step/steps" lines) is the only progress report `firstnet.train.train` gives.
"""

import os
import re
import subprocess
import sys
import threading

from firstnet import runs

ANSI_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRAINING_LINE = re.compile(r"^Training .*: (\d+) epochs?,")
EPOCH_LINE = re.compile(r"^Epoch (\d+)/(\d+)")
STEP_LINE = re.compile(r"^(\d+)/(\d+) ")
TRAIN_COMMAND = "firstnet train"


class Progress:
    """What a `firstnet train` transcript says so far: the phase, the epoch and the step within it."""

    def __init__(self):
        self.phase = "loading the digits"
        self.epoch = 0
        self.epochs = None
        self.step = 0
        self.steps = None

    def feed(self, line):
        text = ANSI_CODES.sub("", line).replace("\b", "").strip()
        if match := TRAINING_LINE.match(text):
            self.phase, self.epoch, self.epochs = "training", 1, int(match[1])
        elif match := EPOCH_LINE.match(text):
            self.phase, self.epoch, self.epochs, self.step = "training", int(match[1]), int(match[2]), 0
        elif match := STEP_LINE.match(text):
            step, steps = int(match[1]), int(match[2])
            if self.phase == "training" and self.steps in (None, steps):
                self.step, self.steps = step, steps
            elif self.phase in ("training", "evaluating"):
                # A bar with another length after training is the evaluation on the test digits.
                self.phase, self.step = "evaluating", self.steps or 0
        elif text.startswith("test_acc"):
            self.phase = "saving"

    def fraction(self):
        """How much of the whole run is done, 0..1, for a progress bar."""
        if self.phase in ("evaluating", "saving"):
            return 1.0
        if not self.epochs or not self.epoch:
            return 0.0
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.epoch - 1 + within) / self.epochs)

    def describe(self):
        if self.phase == "training" and self.epochs:
            return f"training: epoch {self.epoch}/{self.epochs}"
        return self.phase


class Trainer:
    """One background training run at a time; `on_finished(run_dir)` is called when it has saved a model."""

    def __init__(self, runs_root, on_finished, flags=(), announce=None):
        self.runs_root = runs_root
        self.on_finished = on_finished
        self.flags = [str(flag) for flag in flags]
        self.announce = announce or (lambda line: None)
        self.lock = threading.Lock()
        self.state = "idle"
        self.message = ""
        self.run_dir = None
        self.progress = Progress()
        self.process = None

    def status(self):
        with self.lock:
            return {
                "state": self.state,
                "message": self.message,
                "epoch": self.progress.epoch,
                "epochs": self.progress.epochs,
                "fraction": round(self.progress.fraction(), 4),
                "run": None if self.run_dir is None else str(self.run_dir),
            }

    def start(self):
        """Start training; False if a run is already going."""
        with self.lock:
            if self.state == "running":
                return False
            self.run_dir = runs.new_run_dir(root=self.runs_root)
            self.progress = Progress()
            self.state, self.message = "running", "starting `firstnet train`"
            command = [sys.executable, "-m", "firstnet", "train", "--run-dir", str(self.run_dir), *self.flags]
            # Unbuffered, so each progress line arrives as Keras prints it. A session of its own keeps Ctrl-C in
            # the server's terminal from reaching the child; the server ends it itself when it shuts down.
            environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                            encoding="utf-8", errors="replace", env=environment, start_new_session=True)
        threading.Thread(target=self._follow, args=(self.process, self.run_dir), daemon=True).start()
        self.announce(f"training a model with the tutorial's recipe in {self.run_dir}/ ...")
        return True

    def _follow(self, process, run_dir):
        last_lines = []
        last_said = None
        for line in process.stdout:
            with self.lock:
                self.progress.feed(line)
                self.message = self.progress.describe()
            if line.strip() and not STEP_LINE.match(ANSI_CODES.sub("", line).strip()):
                last_lines = (last_lines + [ANSI_CODES.sub("", line).strip()])[-3:]
            if self.message != last_said:
                self.announce(self.message)
                last_said = self.message
        code = process.wait()
        if code == 0:
            try:
                self.on_finished(run_dir)
            except Exception as error:
                self._finish("failed", f"trained, but the model could not be loaded: {error}")
                return
            self._finish("finished", f"trained and loaded {run_dir}/")
        else:
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            reason = last_lines[-1] if last_lines else f"exit code {code}"
            self._finish("failed", f"`{TRAIN_COMMAND}` failed: {reason}")

    def _finish(self, state, message):
        with self.lock:
            self.state, self.message = state, message
        self.announce(message)

    def stop(self):
        """End a running child process (the server is shutting down); its half-written run is left unfinished."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
