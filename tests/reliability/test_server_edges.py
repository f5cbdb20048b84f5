"""The server's edges: it listens on this computer only unless told, says so when exposed, and serves no file but its own."""

import os
import subprocess
import sys
import time

import pytest
import web_clients

from firstnet import cli
from firstnet.web import app as web_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return web_clients.teacher(web_app.create_app(runs_root=str(tmp_path_factory.mktemp("no-runs"))))


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                                  "/static/%2e%2e%2f%2e%2e%2fruns.py", "/static//etc/passwd", "/static/..\\app.py"])
def test_no_path_leaves_the_static_folder(client, path):
    response = client.get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert "import " not in response.text and "root:" not in response.text


def test_the_static_files_are_served(client):
    assert client.get("/static/app.js").status_code == 200


def test_serve_listens_on_this_computer_only_by_default():
    arguments = cli.build_parser().parse_args(["serve"])
    assert arguments.host == "127.0.0.1"


@pytest.mark.slow
def test_serve_says_so_when_other_computers_can_reach_it(tmp_path):
    # Bound to every address, but only ever asked over 127.0.0.1 (this test sends nothing at all).
    process = subprocess.Popen([sys.executable, "-m", "firstnet", "serve", "--host", "0.0.0.0", "--port", "0",
                                "--root", str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if "firstnet playground: http://" in line:
                break
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert any("students on your network open the students' link" in line for line in lines), lines
    # The students' link is this computer's address on the network (never the token), the teacher's carries it.
    students = [line for line in lines if line.startswith("students' link: http://")]
    assert students and "token" not in students[0] and "127.0.0.1" not in students[0], lines
    assert any(line.startswith("firstnet playground: http://127.0.0.1:") and "?token=" in line for line in lines), lines
