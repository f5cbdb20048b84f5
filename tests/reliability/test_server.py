"""The server holds a class: over-limit uploads get their 413 (never a reset), and 32 clients at once get answers.

The real `firstnet serve` runs in a subprocess on 127.0.0.1 with the shared seed-0 run; every request loop is
bounded in count and time. FIRSTNET_LOAD_SECONDS sets the load test's length (default 10 s; docs/reliability.md has
a 60-s run's numbers).
"""

import concurrent.futures
import http.client
import io
import json
import os
import random
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

LOAD_SECONDS = float(os.environ.get("FIRSTNET_LOAD_SECONDS", "10"))
CLIENTS = 32


@pytest.fixture(scope="module")
def server(trained_run):
    process = subprocess.Popen([sys.executable, "-m", "firstnet", "serve", "--model", str(trained_run.run_dir),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = None
    deadline = time.monotonic() + 120
    while port is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        port = int(found.group(1)) if found else None
    if port is None:
        process.kill()
        pytest.fail("firstnet serve did not print its address")
    yield process, port
    process.terminate()
    process.wait(timeout=30)


def rss_kib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def post(port, body, content_type, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        # A browser sends its page's Origin with every POST; the server refuses state changes without one.
        connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type,
                                                                       "Origin": f"http://127.0.0.1:{port}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def multipart(data, name="digit.png"):
    boundary = "firstnetboundary7d3"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_over_limit_uploads_get_413_never_a_reset(server):
    _, port = server
    chooser = random.Random(2)
    answers = []
    for _ in range(30):
        size = chooser.randint(int(2.2 * 2**20), 10 * 2**20)
        body, content_type = multipart(os.urandom(size))
        try:
            status, text = post(port, body, content_type)
        except (ConnectionError, http.client.HTTPException) as error:
            answers.append(f"{size}: {type(error).__name__}")
            continue
        answers.append(status)
        assert status == 413 and "2 MB" in json.loads(text)["detail"]
    assert answers == [413] * 30, answers


def digit_png(mnist, index):
    buffer = io.BytesIO()
    Image.fromarray(mnist.x_test[index]).resize((140, 140)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_32_clients_get_answers_with_flat_memory(server, mnist):
    process, port = server
    pictures = [multipart(digit_png(mnist, index)) for index in range(16)]
    post(port, *pictures[0])  # Warm up: the first answer compiles the network's programs.
    memory_before = rss_kib(process.pid)
    stop_at = time.monotonic() + LOAD_SECONDS

    def client(number):
        latencies, errors = [], []
        while time.monotonic() < stop_at and len(latencies) < 10_000:
            started = time.perf_counter()
            try:
                status, text = post(port, *pictures[(number + len(latencies)) % len(pictures)])
                if status != 200 or "probabilities" not in json.loads(text):
                    errors.append(status)
            except (OSError, http.client.HTTPException) as error:
                errors.append(type(error).__name__)
            latencies.append(time.perf_counter() - started)
        return latencies, errors

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    latencies = np.array([latency for found, _ in results for latency in found])
    errors = [error for _, found in results for error in found]
    memory_after = rss_kib(process.pid)
    report = (f"{CLIENTS} clients for {LOAD_SECONDS:g} s: {len(latencies)} requests, {len(errors)} errors, "
              f"p50 {np.percentile(latencies, 50) * 1000:.0f} ms, p99 {np.percentile(latencies, 99) * 1000:.0f} ms, "
              f"server memory {memory_before / 1024:.0f} -> {memory_after / 1024:.0f} MiB")
    print(report)
    assert errors == [], report
    assert len(latencies) >= CLIENTS
    # Flat memory: the server may grow by its first answers' buffers, not by a copy per request.
    assert memory_after - memory_before < 150 * 1024, report
