"""A class at once on the real `firstnet serve`: phones drawing and adding, viewers following a run, half-open sockets.

Everything runs on 127.0.0.1 and every loop is bounded in count and time. FIRSTNET_LOAD_SECONDS sets how long the
students draw (default 10 s in CI; docs/reliability.md has a longer run's numbers, with `-s` to print the line).
"""

import concurrent.futures
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

LOAD_SECONDS = float(os.environ.get("FIRSTNET_LOAD_SECONDS", "10"))
STUDENTS = 30
VIEWERS = 62  # Two projectors and sixty laptops or phones.
HALF_OPEN = 300
LIVE_RUN = {"epochs": 2, "train_digits": 3000, "batch_size": 16, "hidden_units": 32, "seed": 0}


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory, mnist_path):
    folder = tmp_path_factory.mktemp("class-load")
    process = subprocess.Popen([sys.executable, "-m", "firstnet", "serve", "--model", str(trained_run.run_dir),
                                "--collection", str(folder / "class"), "--root", str(folder / "runs"),
                                "--data", str(mnist_path), "--port", "0"],
                               cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    teacher_url = None
    deadline = time.monotonic() + 120
    while teacher_url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"firstnet playground: (\S+)", line)
        teacher_url = found.group(1) if found else None
    if teacher_url is None:
        process.kill()
        pytest.fail("firstnet serve did not print the teacher's link")
    parts = urllib.parse.urlsplit(teacher_url)
    yield process, parts.port, urllib.parse.parse_qs(parts.query)["token"][0], folder / "class"
    process.terminate()
    process.wait(timeout=30)


def request(port, method, path, body=None, headers=None, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Origin": f"http://127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def multipart(picture, label=None):
    boundary = "firstnetclass42"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.png\"\r\n"
             "Content-Type: image/png\r\n\r\n".encode() + picture + b"\r\n"]
    if label is not None:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\n{label}\r\n".encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def drawing(mnist, index, size=140):
    buffer = io.BytesIO()
    Image.fromarray(mnist.x_test[index]).resize((size, size)).save(buffer, format="PNG")
    return buffer.getvalue()


class Viewer(threading.Thread):
    """One projector or laptop following the live training stream; counts the events it gets."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop, self.status, self.events = port, stop, None, 0

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("GET", "/api/train/events")
            response = connection.getresponse()
            self.status = response.status
            while response.status == 200 and not self.stop.is_set():
                line = response.fp.readline()
                if not line:
                    break
                self.events += line.startswith(b"data: ")
        except OSError:
            pass
        finally:
            connection.close()


def test_a_class_draws_and_adds_while_viewers_follow_and_half_open_sockets_wait(server, mnist):
    process, port, token, folder = server
    teacher = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    pictures = [multipart(drawing(mnist, index)) for index in range(16)]
    request(port, "POST", "/api/predict", *pictures[0][:1], headers={"Content-Type": pictures[0][1]})  # Warm up.

    # 300 connections that never finish their headers (a slowloris client, phones that left the network).
    half_open = []
    for _ in range(HALF_OPEN):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        half_open.append(connection)
    opened = time.monotonic()

    stop = threading.Event()
    viewers = [Viewer(port, stop) for _ in range(VIEWERS)]
    for viewer in viewers:
        viewer.start()
    status, body, _ = request(port, "POST", "/api/train", json.dumps(LIVE_RUN), headers=teacher)
    assert status == 202, body
    stop_at = time.monotonic() + LOAD_SECONDS

    def student(number):
        status, _, headers = request(port, "GET", "/api/class")
        cookie = "; ".join(value.split(";")[0] for key, value in headers.items() if key.lower() == "set-cookie")
        latencies, errors, adds = [], [], []
        while time.monotonic() < stop_at and len(latencies) < 1000:
            body, content_type = pictures[(number + len(latencies)) % len(pictures)]
            started = time.perf_counter()
            try:
                status, text, _ = request(port, "POST", "/api/predict", body,
                                          headers={"Content-Type": content_type, "Cookie": cookie})
                if status != 200 or "probabilities" not in json.loads(text):
                    errors.append(status)
            except (OSError, http.client.HTTPException) as error:
                errors.append(type(error).__name__)
            latencies.append(time.perf_counter() - started)
            if len(latencies) % 3 == 0:  # Every third drawing is added to the class's collection.
                index = (number * 97 + len(adds)) % len(mnist.x_test)
                body, content_type = multipart(drawing(mnist, index, size=84), label=int(mnist.y_test[index]))
                status, _, _ = request(port, "POST", "/api/collection", body,
                                       headers={"Content-Type": content_type, "Cookie": cookie})
                adds.append(status)
        return latencies, errors, adds

    with concurrent.futures.ThreadPoolExecutor(STUDENTS) as pool:
        results = list(pool.map(student, range(STUDENTS)))
    latencies = np.array([latency for found, _, _ in results for latency in found])
    errors = [error for _, found, _ in results for error in found]
    adds = [status for _, _, found in results for status in found]

    # The half-open sockets are closed by the server once their time for headers is up.
    closed = 0
    for connection in half_open:
        connection.settimeout(max(0.1, opened + 25 - time.monotonic()))
        try:
            closed += connection.recv(1024) == b""
        except (socket.timeout, OSError):
            pass
        connection.close()
    stop.set()
    request(port, "POST", "/api/train/stop", headers=teacher)
    for viewer in viewers:
        viewer.join(30)

    report = (f"{STUDENTS} students for {LOAD_SECONDS:g} s with {VIEWERS} viewers and {HALF_OPEN} half-open sockets: "
              f"{len(latencies)} predictions, {len(errors)} errors, p50 {np.percentile(latencies, 50) * 1000:.0f} ms, "
              f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms; adds {sorted(set(adds))} ({len(adds)}); "
              f"viewers' events min {min(viewer.events for viewer in viewers)}; half-open closed {closed}")
    print(report)
    assert errors == [], report
    assert len(latencies) >= STUDENTS, report
    assert set(adds) <= {201, 200, 429} and 201 in adds, report
    assert all(viewer.status == 200 and viewer.events > 0 for viewer in viewers), report
    assert closed == HALF_OPEN, report


def test_the_cap_holds_under_concurrent_adds(tmp_path, mnist):
    from firstnet import classroom
    from firstnet.data import collection

    room = classroom.Classroom(collection.Collection(tmp_path / "class", max_items=20))

    def add(index):
        try:
            return room.add(drawing(mnist, index, size=56), int(mnist.y_test[index]), f"student-{index:016d}")[1]
        except collection.Full:
            return "full"

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        states = list(pool.map(add, range(60)))
    assert collection.Collection(tmp_path / "class").count() == 20
    assert states.count("added") == 20 and states.count("full") + states.count("already") == 40
