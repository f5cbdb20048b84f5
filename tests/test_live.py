"""Training from the page: the knobs, the event stream of real short runs, pause and stop, late viewers, and no leaks.

The app runs on a real uvicorn server in a thread, so the Server-Sent Events go over a real socket; each run is a
real child process training on a few thousand real MNIST digits.
"""

import contextlib
import http.client
import json
import math
import os
import pathlib
import socket
import threading
import time

import numpy as np
import pytest

from conftest import as_in_a_terminal
from firstnet.web import app as web_app, knobs as web_knobs, watcher as live_watcher

# A run of a few seconds: 2,700 digits to learn from (300 held out), 169 steps an epoch, two epochs.
SHORT = {"epochs": 2, "train_digits": 3000, "batch_size": 16, "hidden_units": 32, "seed": 0, "validation_split": 0.1}


@contextlib.contextmanager
def serving(runs_root, data):
    """The playground on a free port of 127.0.0.1, served by uvicorn in a thread; yields (host, port, app, the teacher's token)."""
    import uvicorn

    app = web_app.create_app(runs_root=str(runs_root), data=str(data))
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield ("127.0.0.1", sock.getsockname()[1], app, app.state.playground.guard.token)
    finally:
        app.state.playground.training.end_streams()  # As `firstnet serve` does (web/server.py).
        server.should_exit = True
        thread.join(60)
        sock.close()


@pytest.fixture
def server(tmp_path, mnist_path):
    with serving(tmp_path / "runs", mnist_path) as address:
        yield address


def call(server, method, path, body=None):
    connection = http.client.HTTPConnection(server[0], server[1], timeout=60)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    headers["Authorization"] = f"token {server[3]}"  # The teacher's: training is theirs alone (web/roles.py).
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read() or b"null")
    connection.close()
    return response.status, answer


def saved_folder(server, shown):
    """The folder of a run the page names as `shown` ("runs/<name>"), on the server's disk."""
    return pathlib.Path(server[2].state.playground.runs_root).parent / shown


class Stream:
    """One viewer of GET /api/train/events: the raw response, and its events as (id, event) pairs."""

    def __init__(self, server, query="", last_event_id=None):
        self.connection = http.client.HTTPConnection(server[0], server[1], timeout=120)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.connection.request("GET", "/api/train/events" + query, headers=headers)
        self.response = self.connection.getresponse()

    def events(self):
        seq = None
        for raw in self.response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["seq"] == seq
                yield event

    def until(self, kind):
        """The events up to and including the first of `kind`."""
        found = []
        for event in self.events():
            found.append(event)
            if event["kind"] == kind:
                return found
        raise AssertionError(f"the stream ended before a {kind!r} event: {[event['kind'] for event in found]}")

    def close(self):
        self.connection.close()


def numbers_in(event):
    for key, value in event.items():
        if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            yield key, value


def test_a_short_run_streams_its_events_in_order_and_saves_a_loadable_model(server, tmp_path, mnist_path):
    status, answer = call(server, "POST", "/api/train", SHORT)
    assert status == 202, answer
    assert answer["training"]["state"] == "running" and answer["training"]["knobs"]["epochs"] == 2
    stream = Stream(server, "?until_end=true")
    assert stream.response.status == 200
    assert stream.response.getheader("Content-Type").startswith("text/event-stream")
    events = list(stream.events())
    stream.close()
    kinds = [event["kind"] for event in events]
    assert kinds[0] == "start" and kinds[-1] == "saved", kinds
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    # The order a run goes through: the digits load, training begins, two epochs, then the run is saved.
    order = ["start", "loading", "begin", "loop", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "end", "saved"]
    assert [kind for kind in kinds if kind in order] == order
    steps = [event for event in events if event["kind"] == "step"]
    assert len(steps) >= 2
    for event in steps:
        assert {"epoch", "step", "steps", "loss", "accuracy", "batch_loss", "global_step"} <= set(event)
        assert event["steps"] == 169 and 1 <= event["step"] <= 169
    assert [event["global_step"] for event in steps] == sorted({event["global_step"] for event in steps})
    assert steps[-1]["global_step"] == 2 * 169 and steps[-1]["eta_seconds"] == 0
    for event in events:
        for key, value in numbers_in(event):
            assert math.isfinite(value), (event["kind"], key, value)
    ends = [event for event in events if event["kind"] == "epoch_end"]
    assert [event["epoch"] for event in ends] == [1, 2]
    for event in ends:
        assert 0 < event["val_loss"] < 3 and 0.5 < event["val_accuracy"] <= 1
    assert ends[1]["loss"] < ends[0]["loss"]
    # Confusion matrices before training and after each epoch, on the 300 held-out digits; the strip is guessed.
    evaluations = [event for event in events if event["kind"] == "evaluation"]
    assert [event["after_epochs"] for event in evaluations] == [0, 1, 2]
    for event in evaluations:
        matrix = np.asarray(event["confusion"])
        assert matrix.shape == (10, 10) and matrix.sum() == 300 and event["on"] == "validation digits"
        assert len(event["strip"]["guesses"]) == live_watcher.STRIP_DIGITS
    assert evaluations[-1]["accuracy"] > 0.7 > evaluations[0]["accuracy"]
    snapshots = [event for event in events if event["kind"] == "snapshot"]
    assert snapshots and snapshots[-1]["weights"]["pictures"]["shape"] == [8, 28, 28]
    begin = events[kinds.index("begin")]
    assert begin["strip"]["images"]["shape"] == [16, 28, 28] and len(begin["strip"]["labels"]) == 16

    saved = events[-1]
    # The page names the run as it lies in the runs folder, never by the server's own folders (web/shown.py).
    assert saved["run"].startswith("runs/") and str(tmp_path) not in json.dumps(events)
    # The data by its file's name: where it lies on the server is not the viewers' business either.
    begin_text = next(event["text"] for event in events if event["kind"] == "begin")
    assert f"({pathlib.Path(mnist_path).name})" in begin_text and str(pathlib.Path(mnist_path).parent) not in json.dumps(events)
    run_dir = saved_folder(server, saved["run"])
    assert saved["loaded"] is True and saved["interrupted"] is False and 0.7 < saved["test_accuracy"] <= 1
    assert run_dir.parent == tmp_path / "runs"
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True, compile=False)
    assert model.get_layer("hidden").get_weights()[0].shape == (784, 32)
    status, info = call(server, "GET", "/api/model")
    assert info["loaded"] and info["run"] == saved["run"] and info["hidden_units"] == 32
    assert info["training"]["state"] == "finished" and info["training"]["fraction"] == 1.0


def test_late_viewers_get_the_run_so_far_and_pause_resume_stop_work(server):
    first = Stream(server)
    assert call(server, "POST", "/api/train", {**SHORT, "epochs": 10})[0] == 202
    seen = first.until("step")
    assert call(server, "POST", "/api/train")[0] == 409
    status, answer = call(server, "POST", "/api/train/pause")
    assert status == 200 and answer["state"] == "running"
    seen += first.until("paused")
    assert call(server, "GET", "/api/train")[1]["paused"] is True
    # A viewer who joins now first gets the whole run so far, in the same order, with the same ids.
    late = Stream(server)
    replayed = late.until("paused")
    kept = [event for event in seen if event["kind"] != "snapshot"]
    assert [event for event in replayed if event["kind"] != "snapshot"] == kept
    # A browser that reconnects with Last-Event-ID gets only what came after it.
    middle = kept[len(kept) // 2]["seq"]
    reconnected = Stream(server, "?until_end=true", last_event_id=middle)
    assert call(server, "POST", "/api/train/resume")[0] == 200
    first.until("resumed")  # The status says "paused" until the training process says it has resumed.
    assert call(server, "GET", "/api/train")[1]["paused"] is False
    assert call(server, "POST", "/api/train/stop")[0] == 200
    rest = first.until("saved")
    assert rest[-1]["interrupted"] is True, "a stopped run is saved as stopped"
    assert any(event["kind"] == "end" and event["interrupted"] for event in rest)
    after = list(reconnected.events())
    assert after[0]["seq"] > middle and after[-1]["kind"] == "saved"
    assert late.until("saved")[-1]["seq"] == rest[-1]["seq"]
    for stream in (first, late, reconnected):
        stream.close()
    status, info = call(server, "GET", "/api/train")
    assert info["state"] == "stopped" and "stopped early" in info["message"]
    assert (saved_folder(server, info["run"]) / "model.keras").is_file() and info["run"] in info["message"]
    assert call(server, "POST", "/api/train/stop")[0] == 409


def test_a_convnet_run_streams_its_filters_and_confusion_matrices(server, mnist):
    assert call(server, "POST", "/api/train", {"model": "convnet", "epochs": 1, "train_digits": 1000, "seed": 0})[0] == 202
    stream = Stream(server, "?until_end=true")
    events = list(stream.events())
    stream.close()
    assert events[-1]["kind"] == "saved", events[-1]
    assert "convnet" in next(event for event in events if event["kind"] == "begin")["text"]
    snapshots = [event for event in events if event["kind"] == "snapshot"]
    assert snapshots and snapshots[-1]["weights"]["what"] == "filters"
    assert snapshots[-1]["weights"]["pictures"]["shape"] == [16, 3, 3]
    evaluations = [event for event in events if event["kind"] == "evaluation"]
    assert [event["after_epochs"] for event in evaluations] == [0, 1]
    assert np.asarray(evaluations[-1]["confusion"]).sum() == 1000 and evaluations[-1]["on"] == "test digits"
    # The last matrix is the saved model's own (batch normalization's running statistics included), on the first
    # 1,000 test digits; only float rounding in another batch size could move a digit or two.
    import keras

    from firstnet import predict

    model = keras.saving.load_model(saved_folder(server, events[-1]["run"]) / "model.keras", safe_mode=True,
                                    compile=False)
    guesses = predict.predict_digits(model, mnist.x_test[:1000]).argmax(axis=1)
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (mnist.y_test[:1000].astype(int), guesses), 1)
    assert np.abs(np.asarray(evaluations[-1]["confusion"]) - expected).sum() <= 4


@pytest.mark.parametrize("knobs, field, allowed", [
    ({"epochs": 0}, "epochs", "greater than or equal to 1"),
    ({"epochs": 51}, "epochs", "less than or equal to 50"),
    ({"epochs": "two"}, "epochs", "valid integer"),
    ({"batch_size": 2.5}, "batch_size", "valid integer"),
    ({"hidden_units": -3}, "hidden_units", "greater than or equal to 1"),
    ({"learning_rate": 0}, "learning_rate", "greater than 0"),
    ({"learning_rate": "fast"}, "learning_rate", "valid number"),
    ({"validation_split": 0.9}, "validation_split", "less than or equal to 0.5"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
    ({"train_digits": 10}, "train_digits", "greater than or equal to 100"),
    ({"model": "resnet"}, "model", "'dense' or 'convnet'"),
    ({"optimizer": "magic"}, "optimizer", "'rmsprop'"),
    ({"fast": True, "model": "convnet"}, "", "short recipe of its own"),
    ({"epoch": 2}, "epoch", "Extra inputs are not permitted"),
])
def test_bad_knobs_get_422_saying_what_is_allowed(tmp_path, knobs, field, allowed):
    import web_clients

    with web_clients.teacher(web_app.create_app(runs_root=str(tmp_path / "runs"))) as client:
        response = client.post("/api/train", json=knobs)
        assert response.status_code == 422
        problems = response.json()["detail"]
        assert any(problem["loc"][-1] == field or not field for problem in problems), problems
        assert any(allowed in problem["msg"] for problem in problems), problems
        assert client.get("/api/train").json()["state"] == "idle"
    assert not (tmp_path / "runs").exists(), "a refused start must not leave a run folder"


def test_knobs_fill_in_the_recipes_as_firstnet_train_does():
    from firstnet import train

    assert web_knobs.Knobs().config() == train.TrainConfig(verbose=0)
    fast = web_knobs.Knobs(fast=True, epochs=3).config()
    assert (fast.epochs, fast.learning_rate, fast.learning_rate_schedule) == (3, 0.004, "cosine")
    convnet = web_knobs.Knobs(model="convnet", batch_size=64).config()
    assert (convnet.model, convnet.optimizer, convnet.batch_size) == ("convnet", train.CONVNET["optimizer"], 64)


def test_a_viewer_that_goes_away_costs_nothing_and_start_stop_cycles_leak_nothing(server, monkeypatch):
    from firstnet import abstain

    app = server[2]
    session = app.state.playground.training

    def unlearnt(model, data):
        raise RuntimeError("this test leaves each run's rule unlearnt")

    # Each saved run's "not a digit" rule is learnt in the server's one learning thread (web/rules.py), on the run's
    # data loaded once and kept for the next run: not what this test measures, so the fit itself is left out, and the
    # first measure waits for that thread and the data to be there.
    monkeypatch.setattr(abstain, "fit_rule", unlearnt)

    def rule_settled():
        deadline = time.monotonic() + 60
        while call(server, "GET", "/api/model")[1].get("not_a_digit_rule") == "learning":
            assert time.monotonic() < deadline, "the run's rule never stopped learning"
            time.sleep(0.05)

    def cycle(after=None):
        """Start, watch, stop: at once (while Keras loads) or `after` the first event of that kind."""
        assert call(server, "POST", "/api/train", SHORT)[0] == 202
        viewer = Stream(server)
        if after is None:
            assert next(viewer.events())["kind"] == "start"
        else:
            viewer.until(after)
        viewer.close()  # Mid-stream, as a closed laptop lid would.
        assert call(server, "POST", "/api/train/stop")[0] == 200
        deadline = time.monotonic() + 60
        while call(server, "GET", "/api/train")[1]["state"] == "running":
            assert time.monotonic() < deadline, "a stopped run did not end"
            time.sleep(0.05)

    def memory():
        status = pathlib.Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024

    def open_files():
        return len(os.listdir("/proc/self/fd"))

    def viewers_gone():
        deadline = time.monotonic() + 10
        while session.viewer_count():
            assert time.monotonic() < deadline, f"{session.viewer_count()} viewers left behind after they went away"
            time.sleep(0.05)

    # The first run creates what every later one reuses: the server's worker threads, and Keras, imported when
    # the server loads its first trained model.
    cycle("step")
    viewers_gone()
    rule_settled()
    threads, files, used = threading.active_count(), open_files(), memory()
    for after in (None, "step", None, None, "step", None, None, None):
        cycle(after)
    viewers_gone()
    rule_settled()
    assert session.process.returncode is not None, "the last training process was not reaped"
    assert not any(thread.is_alive() for thread in session.threads)
    assert threading.active_count() <= threads, [thread.name for thread in threading.enumerate()]
    # The server closes its side of a connection a moment after the client has: give it that moment.
    deadline = time.monotonic() + 10
    while open_files() > files and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_files() <= files, sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd"))
    assert memory() - used < 30 * 1024 * 1024, "the server's memory grew by more than 30 MB over 8 runs"
    status = call(server, "GET", "/api/train")[1]
    assert status["state"] == "stopped" and "nothing was saved" in status["message"]
    # Runs stopped while they trained are saved; those stopped before they trained anything leave no folder behind.
    folders = list(pathlib.Path(app.state.playground.runs_root).iterdir())
    assert len(folders) == 3 and all((folder / "model.keras").is_file() for folder in folders), folders


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_watcher_sends_what_a_page_can_draw_however_fast_the_loop_trains(mnist):
    """50,000 steps a second, reported every 50 steps: at most 20 curve points and 4 weight pictures a second go out."""
    from firstnet import train
    from firstnet.loops.events import Event

    sent = []
    clock = FakeClock()
    watcher = live_watcher.LiveWatcher(mnist, train.TrainConfig(hidden_units=16), sent.append, clock=clock)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(784, 16)), np.zeros(16), rng.normal(size=(16, 10)), np.zeros(10)]
    watcher(Event("begin", epochs=1, steps=50_000, facts={"loop": "compiled"}))
    for report in range(1, 1001):
        clock.now += 0.001
        watcher(Event("step", epoch=1, epochs=1, step=report * 50, steps=50_000, weights=lambda: weights,
                      logs={"loss": 1.0 / report, "accuracy": 1 - 1.0 / report}))
    steps = [event for event in sent if event["kind"] == "step"]
    snapshots = [event for event in sent if event["kind"] == "snapshot"]
    assert 15 <= len(steps) <= 21 and 3 <= len(snapshots) <= 5, (len(steps), len(snapshots))
    assert steps[-1]["global_step"] == 50_000 and steps[-1]["eta_seconds"] == 0
    assert steps[-1]["steps_per_second"] == pytest.approx(50_000, rel=0.01)
    # The per-batch loss is the mean over the batches since the last point, below the epoch's running mean.
    assert all(event["batch_loss"] <= event["loss"] for event in steps)
    expected = live_watcher._dense_probabilities(weights, mnist.x_test[:16]).argmax(axis=1).tolist()
    assert snapshots[-1]["strip"]["guesses"] == expected
    assert snapshots[-1]["weights"]["pictures"]["shape"] == [8, 28, 28]


def test_the_watcher_blocks_while_paused_and_stop_interrupts_between_batches(mnist):
    from firstnet import train
    from firstnet.loops.events import Event

    sent = []
    control = live_watcher.Control()
    watcher = live_watcher.LiveWatcher(mnist, train.TrainConfig(), sent.append, control=control)
    control.command("pause")
    threading.Timer(0.3, control.command, args=("resume",)).start()
    started = time.monotonic()
    watcher(Event("epoch_begin", epoch=1, epochs=1, steps=10))
    assert time.monotonic() - started >= 0.25
    assert [event["kind"] for event in sent] == ["epoch_begin", "paused", "resumed"]
    control.command("pause")
    threading.Timer(0.1, control.command, args=("stop",)).start()
    with pytest.raises(KeyboardInterrupt):
        watcher(Event("epoch_begin", epoch=1, epochs=1, steps=10))
    assert sent[-1]["kind"] == "paused"
    # Asked once: the evaluation and saving that follow a stop are not stopped again.
    watcher(Event("epoch_begin", epoch=1, epochs=1, steps=10))


@pytest.mark.slow
def test_serve_refuses_a_data_path_that_is_not_there(tmp_path):
    from conftest import run_firstnet

    result = run_firstnet("serve", "--data", tmp_path / "nowhere.npz", "--port", "0", "--root", tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    assert "--data" in result.stderr and "no such file or folder" in result.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_server_at_once_even_with_a_viewer_following_the_stream(tmp_path):
    """A projector left open follows run after run; the server must not wait for its stream to end."""
    import signal
    import subprocess
    import sys
    import urllib.parse

    process = subprocess.Popen([sys.executable, "-m", "firstnet", "serve", "--port", "0", "--root", str(tmp_path / "runs")],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=as_in_a_terminal)
    try:
        for line in process.stdout:
            if line.startswith("firstnet playground: "):
                break
        port = urllib.parse.urlsplit(line.split()[2]).port
        viewer = Stream(("127.0.0.1", port))
        assert viewer.response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) in (0, 130)  # 130: the exit code of any command stopped by Ctrl-C.
        assert "Traceback" not in process.stdout.read()
        assert list(viewer.events()) == []  # The stream ended cleanly, with the server.
        viewer.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
