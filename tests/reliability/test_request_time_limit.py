"""A request that is not answered in time gets 503 and a line, and a slow answer already under way is let finish."""

import asyncio

from fastapi import FastAPI
from fastapi.testclient import TestClient

import web_clients

from firstnet.web import limits


def app_that_sleeps(seconds_before_answer):
    app = FastAPI()

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(seconds_before_answer)
        return {"answered": True}

    app.add_middleware(limits.RequestTimeLimit, seconds=0.5)
    return app


def test_an_answer_within_the_limit_passes():
    response = TestClient(app_that_sleeps(0.05)).get("/slow")
    assert response.status_code == 200 and response.json() == {"answered": True}


def test_an_answer_past_the_limit_is_a_503_with_a_line():
    response = TestClient(app_that_sleeps(5)).get("/slow")
    assert response.status_code == 503
    assert "took longer than 0.5 s" in response.json()["detail"]


def test_the_playground_has_the_limit(tmp_path):
    from firstnet.web import app as web_app

    app = web_app.create_app(runs_root=str(tmp_path / "runs"))
    assert any(middleware.cls is limits.RequestTimeLimit for middleware in app.user_middleware)
    # And answers as before within it.
    assert web_clients.teacher(app).get("/api/model").status_code == 200
