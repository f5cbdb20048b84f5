"""Test clients for the playground as each role meets it: the teacher (with the token), a student, another site."""

from fastapi import testclient

BASE = "http://127.0.0.1"


def teacher(app, **options):
    """A client holding the teacher's token in a header, as a script of the teacher's would."""
    token = app.state.playground.guard.token
    return testclient.TestClient(app, base_url=BASE, headers={"Authorization": f"token {token}"}, **options)


def student(app, **options):
    """A client as a student's browser is: no token, its own cookies, and the page's own Origin on every request."""
    return testclient.TestClient(app, base_url=BASE, headers={"Origin": BASE}, **options)
