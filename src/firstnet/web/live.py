"""The server side of training from the page: one run at a time in a child process, its events kept and streamed.

The child (web/live_child.py) writes one JSON event per line; a reader thread numbers each one and keeps it in
the run's replay buffer, and every viewer's Server-Sent Events stream reads from that buffer at its own pace.
A viewer who joins late, or whose connection dropped (the browser reconnects with Last-Event-ID), first gets
what it missed, so a projector and thirty laptops see the same run; a slow viewer never holds up the others.
"""

import asyncio
import bisect
import collections
import json
import os
import subprocess
import sys
import threading

from firstnet import runs
from firstnet.web import cells, shown

# Only the newest weights picture is worth replaying; every other event is kept for viewers who join late.
LATEST_ONLY = ("snapshot",)
# A very long run is thinned (every other curve point of its older half dropped) past this many events.
MAX_HISTORY = 20000
KEEP_ALIVE_SECONDS = 15.0
STOP_SECONDS = 10.0
FINISHED_STATES = ("finished", "stopped", "failed")


class Busy(Exception):
    """A run is already going (or nothing is, for pause, resume and stop): the message says what to do."""


class Session:
    """The page's training: at most one child process, the events of the current run, and who is watching.

    `on_trained(run_dir)` loads a saved run as the model that answers drawings; `announce(line)` tells the
    server's terminal. `data` is the server's `--data`, passed on to every run.
    """

    def __init__(self, runs_root, on_trained, data=None, announce=None):
        self.runs_root, self.on_trained, self.data = runs_root, on_trained, data
        self.announce = announce or (lambda line: None)
        self.lock = threading.Lock()
        self.process = None
        self.threads = []
        self.next_seq = 1
        self.viewers = {}
        self.began = self.stop_asked = False
        self.closing = False
        # The digits behind the confusion matrix and their last probabilities: GET /api/train/cell.
        self.confusion = cells.ConfusionPictures()
        self._new_run(None)
        self.status_ = {"state": "idle", "paused": False, "message": "", "epoch": 0, "epochs": None, "step": 0,
                        "steps": None, "fraction": 0.0, "run": None, "knobs": None}

    def _new_run(self, knobs):
        self.history, self.seqs, self.latest = [], [], {}
        self.first_seq = self.next_seq
        self.run_over = knobs is None

    # Starting, pausing and stopping.

    def start(self, knobs):
        """Start a run of `knobs` (a knobs.Knobs); Busy if one is going."""
        with self.lock:
            if self.status_["state"] == "running":
                raise Busy("a model is already training: watch it (GET /api/train/events) or stop it "
                           "(POST /api/train/stop) first")
            self._reap()
            run_dir = runs.reserve_run_dir(root=self.runs_root)
            command = [sys.executable, "-m", "firstnet.web.live_child", knobs.model_dump_json(), str(run_dir)]
            if self.data:
                command.append(str(self.data))
            # A session of its own keeps Ctrl-C in the server's terminal from reaching the child: the server ends
            # it itself. Unbuffered, so each event leaves as soon as it is written.
            environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, encoding="utf-8", errors="replace", env=environment,
                                       start_new_session=True)
            self.process = process
            # Whether the run has begun training (its "begin" event came), and whether it was asked to stop.
            self.began = self.stop_asked = False
            self._new_run(knobs)
            self.confusion.forget()
            self.status_ = {"state": "running", "paused": False, "message": "starting", "epoch": 0,
                            "epochs": None, "step": 0, "steps": None, "fraction": 0.0, "run": self._shown(run_dir),
                            "knobs": knobs.model_dump()}
            self._publish({"kind": "start", "run": self._shown(run_dir), "knobs": knobs.model_dump()})
            errors = collections.deque(maxlen=20)
            self.threads = [threading.Thread(target=self._read_events, args=(process, run_dir, errors), daemon=True),
                            threading.Thread(target=self._read_errors, args=(process, errors), daemon=True)]
        for thread in self.threads:
            thread.start()
        self.announce(f"training from the page in {run_dir}/ ...")
        return self.status()

    def command(self, word):
        """Send "pause", "resume" or "stop" to the running child; Busy when nothing is training."""
        with self.lock:
            process = self.process
            if self.status_["state"] != "running" or process is None:
                raise Busy(f"nothing is training, so there is nothing to {word}: start a run with POST /api/train")
            if word == "stop" and not self.began:
                # Nothing is trained yet, so nothing is lost: end it now rather than wait for Keras to load.
                process.terminate()
            else:
                try:
                    process.stdin.write(word + "\n")
                    process.stdin.flush()
                except (BrokenPipeError, OSError, ValueError):
                    pass  # It is ending already; its reader reports how.
            if word == "stop":
                self.stop_asked = True
                self.status_["message"] = "stopping"
        return self.status()

    def close(self):
        """End a running child (the server is shutting down) and wait for its readers; its run is left unfinished."""
        process = self.process
        if process is not None and process.poll() is None:
            self.closing = True
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()

    def _reap(self):
        process, threads = self.process, self.threads
        if process is not None:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=STOP_SECONDS)
        if process is not None and process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass

    # Reading the child.

    def _read_errors(self, process, errors):
        with process.stderr:
            for line in process.stderr:
                if line.strip():
                    errors.append(line.rstrip())

    def _read_events(self, process, run_dir, errors):
        trained = None
        failure = None
        with process.stdout:
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("kind") in cells.PRIVATE:
                    self.confusion.take(event)
                    continue
                if event.get("kind") == "trained":
                    trained = event
                    continue
                if event.get("kind") in ("error", "stopped"):
                    # The child's last word; the server's own final event (after it has reaped the child) says it.
                    failure = event.get("text") if event["kind"] == "error" else None
                    continue
                if isinstance(event.get("text"), str):  # Words for every viewer: no folder of the server's in them.
                    event["text"] = shown.without_folders(event["text"])
                with self.lock:
                    self._follow(event)
                    self._publish(event)
        code = process.wait()
        self._finish(process, run_dir, code, trained, failure, errors)

    def _finish(self, process, run_dir, code, trained, failure, errors):
        if trained is not None:
            try:
                self.on_trained(trained["run"])
                stopped = trained.get("interrupted")
                state = "stopped" if stopped else "finished"
                message = (f"stopped early and saved {trained['run']}/" if stopped else f"trained and loaded {trained['run']}/")
                final = {**trained, "kind": "saved", "loaded": True, "run": self._shown(trained["run"])}
            except Exception as error:  # noqa: BLE001 - a model that cannot load is reported, never a crash.
                state, message = "failed", f"trained, but the model could not be loaded: {error}"
                final = {"kind": "failed", "text": message, "run": self._shown(trained["run"])}
        else:
            runs.release_reserved(run_dir)
            if self.stop_asked and failure is None:
                state, message = "stopped", "stopped before training began; nothing was saved"
            elif self.closing:
                # Its checkpoint (if training had begun) lets `firstnet train --resume` go on with it.
                state, message = "stopped", f"the server stopped, so the run in {run_dir}/ is left unfinished"
            else:
                reason = failure or (errors[-1] if errors else f"exit code {code}")
                state, message = "failed", f"training failed: {reason}"
            final = {"kind": state, "text": message}
        # The terminal says the whole path; the page, that anyone on the network reads, the run's name.
        announced = message
        message = shown.without_folders(shown.shown_text(message, *{run_dir, trained and trained.get("run")},
                                                         runs_root=self.runs_root))
        if "text" in final:
            final["text"] = message
        with self.lock:
            if self.process is process:
                self.status_.update(state=state, message=message, paused=False)
                if state != "failed":
                    self.status_["fraction"] = 1.0 if state == "finished" else self.status_["fraction"]
                self._publish(final)
                self.run_over = True
        self.announce(announced)

    def _follow(self, event):
        """Keep the status (what GET /api/model says) up to date with the event that just came."""
        status, kind = self.status_, event.get("kind")
        self.began = self.began or kind == "begin"
        stopping = self.stop_asked
        if kind in ("loading", "begin", "end") and not (stopping and kind != "end"):
            status["message"] = event["text"]
        if kind == "loop":
            status["epochs"], status["steps"] = event["epochs"], event["steps"]
        elif kind in ("epoch_begin", "step", "epoch_end"):
            status["epoch"], status["epochs"] = event["epoch"], event["epochs"]
            status["step"], status["steps"] = event.get("step", 0), event["steps"]
            if not stopping:
                status["message"] = f"training: epoch {event['epoch']}/{event['epochs']}"
            total = event["epochs"] * event["steps"]
            status["fraction"] = round(((event["epoch"] - 1) * event["steps"] + status["step"]) / total, 4)
        elif kind in ("paused", "resumed"):
            status["paused"] = kind == "paused"

    # The replay buffer and its viewers.

    def _publish(self, event):
        """Number the event, keep it, and wake every viewer; the caller holds the lock."""
        seq = self.next_seq
        self.next_seq += 1
        event["seq"] = seq
        text = json.dumps(event, allow_nan=False, separators=(",", ":"))
        if event["kind"] in LATEST_ONLY:
            self.latest[event["kind"]] = (seq, text)
        else:
            self.history.append((seq, text))
            self.seqs.append(seq)
            if len(self.history) > MAX_HISTORY:
                self._thin()
        for loop, waker in list(self.viewers.values()):
            try:
                loop.call_soon_threadsafe(waker.set)
            except RuntimeError:
                pass  # That viewer's event loop has closed; its stream's cleanup removes it.

    def _thin(self):
        half = len(self.history) // 2
        older = [entry for index, entry in enumerate(self.history[:half])
                 if index % 2 == 0 or '"kind":"step"' not in entry[1]]
        self.history = older + self.history[half:]
        self.seqs = [seq for seq, _ in self.history]

    def since(self, cursor):
        """The events after `cursor` (a seq) as (seq, text), in order, and whether the run has ended."""
        with self.lock:
            if not self.first_seq - 1 <= cursor < self.next_seq:
                cursor = self.first_seq - 1  # From an older run (or no run at all): this run from its start.
            start = bisect.bisect_right(self.seqs, cursor)
            found = self.history[start:] + [entry for entry in self.latest.values() if entry[0] > cursor]
            return sorted(found), self.run_over

    def status(self):
        with self.lock:
            return dict(self.status_)

    def _shown(self, path):
        """A run's folder as the page may show it (web/shown.py)."""
        return shown.shown_path(path, self.runs_root)

    async def stream(self, cursor=0, until_end=False):
        """Server-Sent Events: the run so far after `cursor`, then each event as it comes, keep-alives between.

        `until_end` closes the stream once the run has ended (for scripts and tests); otherwise it follows run
        after run, for a projector. A client that goes away cancels this generator at its next await.
        """
        loop = asyncio.get_running_loop()
        waker = asyncio.Event()
        token = object()
        with self.lock:
            self.viewers[token] = (loop, waker)
        try:
            yield "retry: 2000\n\n"
            while not self.closing:
                waker.clear()
                found, over = self.since(cursor)
                for seq, text in found:
                    cursor = max(cursor, seq)
                    yield f"id: {seq}\ndata: {text}\n\n"
                if until_end and over:
                    return
                try:
                    await asyncio.wait_for(waker.wait(), KEEP_ALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            with self.lock:
                self.viewers.pop(token, None)

    def end_streams(self):
        """The server is shutting down: every viewer's stream ends now (a page left open must not keep it waiting)."""
        with self.lock:
            self.closing = True
            for loop, waker in self.viewers.values():
                loop.call_soon_threadsafe(waker.set)

    def viewer_count(self):
        with self.lock:
            return len(self.viewers)


def last_event_id(header):
    """The browser's Last-Event-ID header as a seq (0 when missing or not a number)."""
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0

