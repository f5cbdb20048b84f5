"""The class on a school network, as a red team tries it: every route as a student, another site and a foreign name."""

import io
import logging
import re

import numpy as np
import pytest
import web_clients
from fastapi import testclient
from PIL import Image

from firstnet import classroom
from firstnet.data import collection
from firstnet.web import app as web_app, connections, limits, live_routes, roles

ITEM = "0123456789abcdef"
# A request for each method and path that cannot start anything long when it is allowed (no model is loaded, and
# the bodies are refused by validation), so every route can be called by every role.
CALLS = {
    ("GET", "/static"): {"url": "/static/app.js"},
    ("GET", "/static-offline-docs"): {"url": "/static-offline-docs/swagger-ui.css"},
    ("GET", "/api/train/events"): {"url": "/api/train/events?until_end=true"},
    ("POST", "/api/train"): {"json": {"epochs": 0}},
    ("POST", "/api/class"): {"json": {"nonsense": 1}},
    ("POST", "/api/model"): {"json": {"run": "no-such-run"}},
    ("POST", "/api/collection/review/{item_id}"): {"json": {}},
    ("POST", "/api/collection/import"): {"content": b"not a zip", "headers": {"content-type": "application/zip"}},
    ("POST", "/api/collection"): {"content": b"", "headers": {"content-type": "text/plain"}},
    ("POST", "/api/predict"): {"json": {"image": "@@"}},
    ("POST", "/api/fool"): {"json": {"index": 0, "target": 3}},
    ("GET", "/api/train/cell"): {"url": "/api/train/cell?true=3&predicted=5"},
}


def call(client, method, path, **extra):
    options = dict(CALLS.get((method, path), {}))
    url = options.pop("url", path.replace("{item_id}", ITEM))
    headers = {**options.pop("headers", {}), **extra.pop("headers", {})}
    return client.request(method, url, headers=headers, follow_redirects=False, **options, **extra)


@pytest.fixture
def app(tmp_path):
    return web_app.create_app(runs_root=str(tmp_path / "runs"), collection=str(tmp_path / "class"))


def every_route(app):
    """(method, path) of every route the app has, walked from its route table (mounts and docs included)."""
    found = []
    for route in app.routes:
        for method in sorted(set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            found.append((method, route.path))
    return found


def test_every_route_of_the_app_and_of_openapi_has_a_rule(app):
    routes = every_route(app)
    assert not roles.missing_rules(app)
    assert set(routes) <= set(roles.ROUTES), set(routes) - set(roles.ROUTES)
    with web_clients.teacher(app) as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert documented and documented <= set(roles.ROUTES), documented - set(roles.ROUTES)
    # The rules that exist belong to routes that exist: the table is not a wish list.
    assert set(roles.ROUTES) <= set(routes), set(roles.ROUTES) - set(routes)


def test_a_route_without_a_rule_stops_the_app_from_starting(tmp_path, monkeypatch):
    monkeypatch.delitem(roles.ROUTES, ("GET", "/api/collection/mine"))
    with pytest.raises(RuntimeError, match="GET /api/collection/mine"):
        web_app.create_app(runs_root=str(tmp_path / "runs"), collection=str(tmp_path / "class"))


@pytest.mark.parametrize("method, path", sorted(roles.ROUTES))
def test_each_route_answers_each_role_as_the_table_says(app, method, path):
    rule = roles.ROUTES[(method, path)]
    with web_clients.student(app) as student, web_clients.teacher(app) as teacher:
        as_student = call(student, method, path)
        as_teacher = call(teacher, method, path)
        elsewhere = testclient.TestClient(app, base_url="http://rebind.attacker.example")
        foreign_host = call(elsewhere, method, path, headers={"Authorization": f"token {app.state.playground.guard.token}"})
        cross_site = call(teacher, method, path, headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"})
    assert as_teacher.status_code != 403, as_teacher.text
    if rule == roles.TEACHER:
        assert as_student.status_code == 403 and "only the teacher" in as_student.json()["detail"]
    else:
        assert as_student.status_code != 403, as_student.text
    # A DNS-rebinding page reaches the server under a name of its own: refused, whoever sends it.
    assert foreign_host.status_code == 403 and "--allow-host" in foreign_host.json()["detail"]
    if method in ("GET", "HEAD"):
        assert cross_site.status_code == as_teacher.status_code
    else:
        assert cross_site.status_code == 403 and "own page" in cross_site.json()["detail"]
    for answer in (as_student, as_teacher, foreign_host, cross_site):
        assert not [name for name in answer.headers if name.lower().startswith("access-control-")]


@pytest.mark.parametrize("headers", [
    {"Origin": "http://attacker.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {},  # No Origin and no XSRF token: a form from a browser too old to say where it came from.
    {"X-XSRF-Token": "guessed"},
])
def test_state_changes_from_elsewhere_are_refused_even_for_the_teachers_browser(app, headers):
    with testclient.TestClient(app, base_url="http://127.0.0.1") as browser:
        token = app.state.playground.guard.token
        assert browser.get(f"/?token={token}", follow_redirects=False).status_code == 303
        assert browser.get("/api/class").json()["role"] == "teacher"  # The cookie makes this browser the teacher's.
        refused = browser.post("/api/train/stop", headers=headers)
        assert refused.status_code == 403, refused.text
        # The page's own requests pass: the same origin, or the XSRF cookie echoed in its header.
        assert browser.post("/api/train/stop", headers={"Origin": "http://127.0.0.1"}).status_code == 409
        echoed = browser.post("/api/train/stop", headers={"X-XSRF-Token": browser.cookies[roles.XSRF_COOKIE]})
        assert echoed.status_code == 409


def test_the_teachers_link_sets_a_private_cookie_and_leaves_the_address_bar_clean(app):
    token = app.state.playground.guard.token
    with testclient.TestClient(app, base_url="http://127.0.0.1") as browser:
        answer = browser.get(f"/?view=projector&token={token}", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/?view=projector"
        cookies = answer.headers.get_list("set-cookie")
        teacher = [cookie for cookie in cookies if cookie.startswith(roles.TEACHER_COOKIE)]
        assert teacher and "HttpOnly" in teacher[0] and "SameSite=Strict" in teacher[0]
        assert browser.get("/api/class").json()["role"] == "teacher"
        wrong = testclient.TestClient(app, base_url="http://127.0.0.1").get("/?token=guess", follow_redirects=False)
        assert wrong.status_code == 403 and "wrong token" in wrong.json()["detail"]


def test_names_the_server_answers_to(tmp_path):
    local = roles.Classroom()
    assert local.host_allowed("127.0.0.1:8000") and local.host_allowed("localhost") and local.host_allowed("[::1]:80")
    assert not local.host_allowed("192.168.1.20:8000") and not local.host_allowed("rebind.attacker.example")
    assert not local.host_allowed("")
    school = roles.Classroom(remote=True, allow_hosts=["Teacher-Laptop.local"])
    assert school.host_allowed("192.168.1.20:8000") and school.host_allowed("[fe80::1]:8000")
    assert school.host_allowed("teacher-laptop.local:8000")
    assert not school.host_allowed("rebind.attacker.example:8000") and not school.host_allowed("192.168.1.20.evil.example")


def test_a_forged_student_cookie_gets_a_new_id_not_anothers(app):
    with web_clients.student(app) as first:
        first.get("/api/class")
        real = first.cookies[roles.STUDENT_COOKIE]
    student, _, _ = real.partition(".")
    with web_clients.student(app) as forger:
        forger.cookies.set(roles.STUDENT_COOKIE, f"{student}.{'0' * 32}", domain="127.0.0.1")
        answer = forger.get("/api/class")
        given = [cookie for cookie in answer.headers.get_list("set-cookie") if cookie.startswith(roles.STUDENT_COOKIE)]
        assert given and not given[0].startswith(f"{roles.STUDENT_COOKIE}={student}.")


def drawing(seed):
    """A drawing as the page sends it: a white stroke figure on black, different for each seed."""
    rng = np.random.default_rng(seed)
    picture = np.zeros((140, 140), dtype=np.uint8)
    for _ in range(5):
        top, left = rng.integers(10, 100, 2)
        height, width = rng.integers(8, 40, 2)
        picture[top:top + height, left:left + width] = 255
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG")
    return buffer.getvalue()


def add(client, seed, label="7"):
    return client.post("/api/collection", files={"file": ("drawing.png", drawing(seed), "image/png")},
                       data={"label": label})


def test_students_see_and_take_back_only_their_own_pictures(app, tmp_path):
    with web_clients.student(app) as alice, web_clients.student(app) as bob, web_clients.teacher(app) as teacher:
        mine = add(alice, 1, "4")
        assert mine.status_code == 201 and mine.json()["state"] == "added"
        # The label the student chose is the label stored.
        assert mine.json()["item"]["label"] == "4"
        theirs = add(bob, 2).json()["item"]["id"]
        assert [item["id"] for item in alice.get("/api/collection/mine").json()["items"]] == [mine.json()["item"]["id"]]
        assert bob.delete(f"/api/collection/{mine.json()['item']['id']}").status_code == 404
        assert alice.get("/api/collection/mine").json()["total"] == 2
        assert alice.delete(f"/api/collection/{mine.json()['item']['id']}").status_code == 204
        assert alice.get("/api/collection/mine").json()["items"] == []
        # The class's list, export and score are the teacher's; the teacher may take back anyone's picture.
        assert alice.get("/api/collection").status_code == 403
        assert alice.get("/api/collection/export").status_code == 403
        assert teacher.get("/api/collection").json()["total"] == 1
        assert teacher.delete(f"/api/collection/{theirs}").status_code == 204
        assert not list((tmp_path / "class" / "7").glob("*.png"))


def test_review_first_keeps_pictures_from_the_class_until_the_teacher_accepts(tmp_path):
    app = web_app.create_app(runs_root=str(tmp_path / "runs"), collection=str(tmp_path / "class"), review_first=True)
    with web_clients.student(app) as student, web_clients.teacher(app) as teacher:
        waiting = [add(student, seed, str(seed)) for seed in range(3)]
        assert [answer.status_code for answer in waiting] == [202, 202, 202]
        assert all(answer.json()["state"] == "pending" for answer in waiting)
        # Nothing reached the collection, the training's folder reader, or the class's counts.
        assert teacher.get("/api/collection").json()["total"] == 0
        assert not [path for path in (tmp_path / "class").rglob("*.png") if ".pending" not in path.parts]
        assert [item["state"] for item in student.get("/api/collection/mine").json()["items"]] == ["waiting for the teacher"] * 3
        queue = teacher.get("/api/collection/review").json()["items"]
        assert len(queue) == 3 and all("owner" not in item for item in queue)
        assert student.get("/api/collection/review").status_code == 403
        by_label = {item["label"]: item["id"] for item in queue}
        accepted = teacher.post(f"/api/collection/review/{by_label['1']}", json={"accept": True})
        assert accepted.status_code == 200 and accepted.json()["accepted"] is True
        assert teacher.post(f"/api/collection/review/{by_label['2']}", json={"accept": False}).json()["accepted"] is False
        assert teacher.post(f"/api/collection/review/{by_label['2']}", json={"accept": True}).status_code == 404
        listed = teacher.get("/api/collection").json()
        assert listed["total"] == 1 and listed["counts"]["1"] == 1 and listed["pending"] == 1
        states = sorted(item["state"] for item in student.get("/api/collection/mine").json()["items"])
        assert states == ["in the collection", "waiting for the teacher"]
        # A student may take back a picture still waiting, too.
        assert student.delete(f"/api/collection/{by_label['0']}").status_code == 204
        assert teacher.get("/api/collection/review").json()["items"] == []
        # The teacher turns review off from the page; the next picture goes straight in.
        assert teacher.post("/api/class", json={"review_first": False}).json()["review_first"] is False
        assert add(student, 9).status_code == 201


def test_adds_are_limited_per_student_with_retry_after(app, monkeypatch):
    with web_clients.student(app) as student:
        answers = [add(student, seed).status_code for seed in range(web_app.ADDS_PER_MINUTE + 1)]
        assert answers[:web_app.ADDS_PER_MINUTE] == [201] * web_app.ADDS_PER_MINUTE
        refused = add(student, 999)
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 61
        # Another student on another device is not held up by this one.
        with web_clients.student(app) as other:
            assert add(other, 1000).status_code == 201


def test_the_teacher_chooses_which_finished_run_answers_the_class(trained_run, tmp_path):
    import shutil

    root = tmp_path / "runs"
    for name in ("2026-01-01_090000", "2026-01-02_090000"):
        shutil.copytree(trained_run.run_dir, root / name)
    app = web_app.create_app(root / "2026-01-01_090000", runs_root=str(root), collection=str(tmp_path / "c"))
    with web_clients.teacher(app) as teacher, web_clients.student(app) as student:
        listed = teacher.get("/api/runs").json()
        assert [entry["name"] for entry in listed["runs"]] == ["2026-01-01_090000", "2026-01-02_090000"]
        assert listed["current"].endswith("2026-01-01_090000")
        chosen = teacher.post("/api/model", json={"run": "2026-01-02_090000"})
        assert chosen.status_code == 200 and chosen.json()["run"].endswith("2026-01-02_090000")
        # Names only: nothing outside the runs folder, and nothing that is not a finished run, is loaded.
        for name in ("../2026-01-01_090000", str(trained_run.run_dir), "..", ""):
            assert teacher.post("/api/model", json={"run": name}).status_code in (404, 422)
        assert student.post("/api/model", json={"run": "2026-01-01_090000"}).status_code == 403
        assert student.get("/api/model").json()["run"].endswith("2026-01-02_090000")


def test_the_rate_limit_counts_a_sliding_minute():
    now = [0.0]
    limit = limits.RateLimit(2, clock=lambda: now[0])
    assert limit.wait("a") == 0 and limit.wait("a") == 0
    assert limit.wait("a") == 61 and limit.wait("b") == 0
    now[0] = 30.0
    assert limit.wait("a") == 31
    now[0] = 60.5
    assert limit.wait("a") == 0


def test_a_live_view_past_its_cap_gets_a_clear_503(app, monkeypatch):
    monkeypatch.setattr(live_routes, "MAX_VIEWERS", 0)
    with web_clients.student(app) as student:
        answer = student.get("/api/train/events?until_end=true")
    assert answer.status_code == 503 and "viewers" in answer.json()["detail"] and answer.headers["Retry-After"]


def test_a_huge_picture_is_refused_before_it_is_decoded(trained_run, tmp_path):
    app = web_app.create_app(trained_run.run_dir, runs_root=str(tmp_path / "runs"), collection=str(tmp_path / "c"))
    buffer = io.BytesIO()
    Image.new("L", (4096, 4096)).save(buffer, "PNG")
    with web_clients.student(app) as student:
        answer = student.post("/api/predict", files={"file": ("big.png", buffer.getvalue(), "image/png")})
        assert answer.status_code == 422 and "million pixels" in answer.json()["detail"]
        eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
        refused = student.post("/api/predict", files={"file": ("x.eps", eps, "application/postscript")})
        assert refused.status_code == 422 and "PNG, JPEG, BMP, GIF or WebP" in refused.json()["detail"]


def test_a_student_sees_how_well_the_network_reads_their_own_digits(trained_run, tmp_path, mnist):
    app = web_app.create_app(trained_run.run_dir, runs_root=str(tmp_path / "runs"), collection=str(tmp_path / "c"))
    with web_clients.student(app) as student, web_clients.student(app) as other:
        assert student.get("/api/collection/mine/score").json()["count"] == 0
        for index in range(4):
            big = Image.fromarray(255 - mnist.x_test[index]).resize((112, 112))
            buffer = io.BytesIO()
            big.save(buffer, "PNG")
            answer = student.post("/api/collection", files={"file": ("d.png", buffer.getvalue(), "image/png")},
                                  data={"label": str(mnist.y_test[index])})
            assert answer.status_code == 201
        score = student.get("/api/collection/mine/score").json()
        assert score["count"] == 4
        assert sorted(entry["label"] for entry in score["pictures"]) == sorted(int(label) for label in mnist.y_test[:4])
        assert score["correct"] == sum(entry["label"] == entry["read"] for entry in score["pictures"])
        assert other.get("/api/collection/mine/score").json()["count"] == 0


def test_originals_are_kept_within_their_bound_without_trailing_bytes(tmp_path):
    room = classroom.Classroom(collection.Collection(tmp_path / "class"))
    noise = np.random.default_rng(0).integers(0, 256, (600, 500, 3), dtype=np.uint8)
    noise[200:400, 200:300] = 0
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    padded = buffer.getvalue() + b"\0" * 500_000  # Trailing garbage after the PNG's end.
    assert len(padded) < collection.MAX_ORIGINAL_BYTES
    item, state = room.add(padded, "1", "student-id-0123456789")
    kept = tmp_path / "class" / collection.ORIGINALS / f"{item['id']}.png"
    assert state == "added" and max(Image.open(kept).size) == collection.ORIGINAL_SIDE
    assert kept.stat().st_size < 250_000 < len(padded)


def test_the_header_deadline_falls_back_to_uvicorns_own_when_its_insides_change(monkeypatch, caplog):
    import uvicorn.protocols.http.h11_impl as h11_impl

    assert issubclass(connections.header_deadline_protocol(), h11_impl.H11Protocol)
    monkeypatch.delattr(h11_impl, "H11Protocol")
    with caplog.at_level(logging.WARNING, logger="firstnet"):
        assert connections.header_deadline_protocol() is None
        settings = connections.uvicorn_settings()
    assert "http" not in settings and settings["limit_concurrency"] == connections.MAX_CONNECTIONS
    assert "no deadline for request headers" in caplog.text


def test_a_flood_of_resource_errors_is_logged_once_a_minute():
    now = [0.0]
    flood = connections.OncePerMinute(clock=lambda: now[0])
    record = lambda: logging.LogRecord("asyncio", logging.ERROR, __file__, 1,  # noqa: E731
                                       "socket.accept() out of system resource", (), None)
    passed = [flood.filter(record()) for _ in range(1000)]
    assert passed.count(True) == 1
    now[0] = 61.0
    again = record()
    assert flood.filter(again) and "999 more like it" in again.getMessage()
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", (), None)
    assert flood.filter(other)


def test_the_file_limit_is_raised_towards_what_a_class_needs():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        raised = connections.raise_file_limit(1024)
        assert raised == min(1024, hard) if hard != resource.RLIM_INFINITY else raised == 1024
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_role_table_in_the_teachers_docs_matches_the_code():
    import pathlib

    docs = pathlib.Path(__file__).parents[1] / "docs" / "teachers.md"
    text = docs.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(GET|POST|DELETE) ([^`]+)` \| (anyone|student|teacher) \|", text, flags=re.M))
    assert rows == {(method, path, rule) for (method, path), rule in roles.ROUTES.items()}
