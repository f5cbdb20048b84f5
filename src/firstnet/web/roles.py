"""Who may do what on the class's server: the role of each route, and the checks every request passes first.

Three rules, one per route (ROUTES; a route with none makes the app refuse to start):
- `anyone`: the page, its files, the model's facts, predictions, fooling a test digit, the live view and its
  confusion cells;
- `student`: what a student does as themselves: add a picture, see and take back their own, see how the network
  reads them. A student is a random id kept in a signed cookie (no name), given to every browser on its first visit;
- `teacher`: everything else (training, fine-tuning, the whole class's pictures and score, export and import, the
  review queue, the class's settings). The teacher proves it with the token that `firstnet serve` prints in the
  teacher's link, as Jupyter Server does: kept in a cookie after the first visit, or sent as `Authorization: token T`.

Before any route runs, `Guard` checks what Jupyter Server checks: the `Host` header must name this server (a DNS
rebinding page's does not: 403), and a request that changes something must come from the page itself (an `Origin`
of this server, or the XSRF cookie echoed in a header), never from another site (403). No CORS headers are sent.
"""

import hmac
import ipaddress
import secrets
import urllib.parse

from starlette import requests as starlette_requests, responses, routing

ANYONE, STUDENT, TEACHER = "anyone", "student", "teacher"
RANK = {ANYONE: 0, STUDENT: 1, TEACHER: 2}

# The role table: (method, route path) -> who may call it. README's teacher section shows it; a test walks every
# route of the app and /openapi.json against it.
ROUTES = {
    ("GET", "/"): ANYONE,
    ("GET", "/static"): ANYONE,
    ("GET", "/projector"): ANYONE,
    ("GET", "/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect"): ANYONE,
    ("GET", "/openapi.json"): ANYONE,
    ("GET", "/static-offline-docs"): ANYONE,
    ("GET", "/api/model"): ANYONE,
    ("POST", "/api/predict"): ANYONE,
    ("POST", "/api/fool"): ANYONE,  # It reads MNIST's public test digits and changes nothing.
    ("GET", "/api/class"): ANYONE,
    ("GET", "/api/class/qr.svg"): ANYONE,
    ("GET", "/api/train"): ANYONE,
    ("GET", "/api/train/events"): ANYONE,
    ("GET", "/api/train/cell"): ANYONE,
    ("POST", "/api/collection"): STUDENT,
    ("GET", "/api/collection/mine"): STUDENT,
    ("GET", "/api/collection/mine/score"): STUDENT,
    ("DELETE", "/api/collection/{item_id}"): STUDENT,  # A student's own pictures only; the teacher's any.
    ("GET", "/api/collection"): TEACHER,
    ("GET", "/api/collection/export"): TEACHER,
    ("POST", "/api/collection/import"): TEACHER,
    ("GET", "/api/collection/import"): TEACHER,
    ("GET", "/api/collection/score"): TEACHER,
    ("POST", "/api/collection/finetune"): TEACHER,
    ("GET", "/api/collection/review"): TEACHER,
    ("POST", "/api/collection/review/{item_id}"): TEACHER,
    ("POST", "/api/class"): TEACHER,
    ("GET", "/api/runs"): TEACHER,
    ("POST", "/api/model"): TEACHER,
    ("POST", "/api/train"): TEACHER,
    ("POST", "/api/train/pause"): TEACHER,
    ("POST", "/api/train/resume"): TEACHER,
    ("POST", "/api/train/stop"): TEACHER,
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TEACHER_COOKIE = "firstnet-teacher"
STUDENT_COOKIE = "firstnet-student"
XSRF_COOKIE = "_xsrf"
XSRF_HEADER = "x-xsrf-token"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
COOKIE_DAYS = 120  # A school term: a student keeps their id, and so their pictures, until the cookie ends.


class Classroom:
    """The server's secrets and the names it answers to; one per `firstnet serve`."""

    def __init__(self, token=None, allow_hosts=(), remote=False, students_url=None):
        self.token = token or secrets.token_urlsafe(24)
        # Student ids are signed with a key of their own, so that no cookie can claim another's id.
        self.signing_key = secrets.token_bytes(32)
        self.allow_hosts = {name.lower().strip("[]") for name in allow_hosts}
        # Listening beyond this computer (--host 0.0.0.0): students reach it by an address (an IP literal, which no
        # rebinding page can use), or by a name given with --allow-host.
        self.remote = remote
        self.students_url = students_url

    def is_teacher_token(self, value):
        return bool(value) and hmac.compare_digest(str(value).encode(), self.token.encode())

    def host_allowed(self, host):
        name = host_name(host)
        if not name:
            return False
        if name in LOCAL_NAMES or name in self.allow_hosts:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False  # A name nobody gave: the mark of DNS rebinding.
        return address.is_loopback or self.remote

    def sign(self, student):
        return hmac.new(self.signing_key, student.encode(), "sha256").hexdigest()[:32]

    def student_from(self, cookie):
        """The student id in a signed cookie value, or None when there is none or its signature is wrong."""
        student, _, signature = str(cookie or "").partition(".")
        if student and signature and hmac.compare_digest(signature, self.sign(student)):
            return student
        return None

    def new_student(self):
        student = secrets.token_urlsafe(16)
        return student, f"{student}.{self.sign(student)}"


def host_name(host):
    """The name in a Host header, without its port, lower case: "[::1]:8000" -> "::1"."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def rule_for(router, scope):
    """The rule of the route a request reaches, or None where no route matches fully (a 404 or 405 follows)."""
    for route in router.routes:
        match, _ = route.matches(scope)
        if match == routing.Match.FULL:
            method = "GET" if scope["method"] == "HEAD" else scope["method"]
            return ROUTES.get((method, route.path), "missing")
    return None


def missing_rules(app):
    """Each (method, path) of the app that has no rule in ROUTES: the app refuses to start while there is one."""
    missing = []
    for route in app.routes:
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(set(methods) - {"HEAD"}):
            if (method, route.path) not in ROUTES:
                missing.append(f"{method} {route.path}")
    return missing


def refuse(status, detail):
    return responses.JSONResponse({"detail": detail}, status_code=status)


class Guard:
    """ASGI middleware: the Host check, the origin check, the teacher's token and the student's id, then the role."""

    def __init__(self, app, classroom, router):
        self.app = app
        self.classroom = classroom
        self.router = router

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = starlette_requests.Request(scope)
        classroom = self.classroom
        host = request.headers.get("host", "")
        if not classroom.host_allowed(host):
            name = host_name(host) or "(none)"
            await refuse(403, f"this server does not answer to the name {name!r}; if that is its name on your "
                              f"network, start it with --allow-host {name}")(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not self.same_origin(request, host):
            await refuse(403, "refused: the request did not come from this server's own page (another site, or "
                              "no Origin and no XSRF token); use the page, or send Authorization: token "
                              "TEACHER_TOKEN")(scope, receive, send)
            return
        cookies = request.cookies
        header_token = request.headers.get("authorization", "")
        token = header_token[6:].strip() if header_token.lower().startswith("token ") else None
        query_token = request.query_params.get("token")
        if query_token is not None and scope["method"] == "GET" and scope["path"] in ("/", "/projector"):
            await self.welcome_teacher(request, query_token, scope, receive, send)
            return
        teacher = classroom.is_teacher_token(token) or classroom.is_teacher_token(cookies.get(TEACHER_COOKIE))
        student = classroom.student_from(cookies.get(STUDENT_COOKIE))
        new_cookies = []
        if student is None:
            student, signed = classroom.new_student()
            new_cookies.append(cookie_header(STUDENT_COOKIE, signed, http_only=True))
        if not cookies.get(XSRF_COOKIE):
            new_cookies.append(cookie_header(XSRF_COOKIE, secrets.token_urlsafe(16), http_only=False))
        role = TEACHER if teacher else STUDENT
        scope.setdefault("state", {})
        scope["state"].update(role=role, student=student, classroom=classroom)
        rule = rule_for(self.router, scope)
        if rule == "missing":
            await refuse(403, "this route has no rule for who may call it")(scope, receive, send)
            return
        if rule is not None and RANK[role] < RANK[rule]:
            await refuse(403, "only the teacher may do this: open the teacher's link that `firstnet serve` printed"
                         )(scope, receive, send)
            return

        async def send_with_cookies(message):
            if message["type"] == "http.response.start" and new_cookies:
                message = {**message, "headers": list(message.get("headers", [])) + new_cookies}
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    def same_origin(self, request, host):
        """True for a request from this server's page, or from a program holding the teacher's token or the XSRF cookie."""
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site")
        if origin is not None and origin != "null":
            parsed = urllib.parse.urlsplit(origin)
            if parsed.scheme not in ("http", "https") or parsed.netloc.lower() != host.lower():
                return False
        elif origin == "null":
            return False
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        if origin is not None:
            return True
        # No Origin: not a browser's page (they send it with every POST), or a very old browser. A program proves
        # itself with the teacher's token in a header, or with the XSRF cookie echoed in a header (what the page does).
        header = request.headers.get("authorization", "")
        if header.lower().startswith("token ") and self.classroom.is_teacher_token(header[6:].strip()):
            return True
        xsrf = request.cookies.get(XSRF_COOKIE)
        echoed = request.headers.get(XSRF_HEADER)
        return bool(xsrf and echoed and hmac.compare_digest(xsrf, echoed))

    async def welcome_teacher(self, request, token, scope, receive, send):
        """The teacher's link: keep the token in a cookie and go to the same page without it in the address bar
        (a projected address bar would show it to the class)."""
        if not self.classroom.is_teacher_token(token):
            await refuse(403, "wrong token: open the teacher's link exactly as `firstnet serve` printed it"
                         )(scope, receive, send)
            return
        kept = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
        target = request.url.path + ("?" + urllib.parse.urlencode(kept) if kept else "")
        response = responses.RedirectResponse(target, status_code=303)
        response.raw_headers.append(cookie_header(TEACHER_COOKIE, self.classroom.token, http_only=True))
        if not request.cookies.get(XSRF_COOKIE):
            response.raw_headers.append(cookie_header(XSRF_COOKIE, secrets.token_urlsafe(16), http_only=False))
        await response(scope, receive, send)


def cookie_header(name, value, http_only):
    """A Set-Cookie header for this server only: SameSite=Strict, so no other site's page ever sends it."""
    parts = [f"{name}={value}", "Path=/", "SameSite=Strict", f"Max-Age={COOKIE_DAYS * 86400}"]
    if http_only:
        parts.append("HttpOnly")
    return (b"set-cookie", "; ".join(parts).encode("latin-1"))


def role_table():
    """The role table as rows (method, path, rule), for the README and /api/class."""
    return [(method, path, rule) for (method, path), rule in sorted(ROUTES.items(), key=lambda item: item[0][1])]
