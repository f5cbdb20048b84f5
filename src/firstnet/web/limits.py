"""The server's bounds: request sizes (413), the time to answer (503), and how often one client may add (429)."""

import asyncio
import threading
import time

from starlette import exceptions, responses

MAX_BODY_BYTES = 2 * 1024 * 1024
# A refused body is still read, up to this much and this long, and dropped: a server that answers and closes
# while the client is still sending makes the client's system reset the connection, and the client sees
# "connection reset" instead of the 413 and its message. Past these bounds the connection is closed anyway.
DRAIN_BYTES = 32 * 1024 * 1024
DRAIN_SECONDS = 10.0


class BodyTooLarge(exceptions.HTTPException):
    """Raised while reading a body that has grown past the limit; FastAPI turns it into a 413 answer."""

    def __init__(self, max_bytes):
        super().__init__(status_code=413, detail=too_large_message(max_bytes))


def too_large_message(max_bytes):
    return f"the request is larger than {max_bytes // (1024 * 1024)} MB; send a smaller picture (a digit needs far less)"


class BodyLimit:
    """ASGI middleware: refuse a declared Content-Length over the limit at once, and count the bytes actually received.

    The header alone is not enough: a client may send a chunked body with no length, or lie about it.
    """

    def __init__(self, app, max_bytes=MAX_BODY_BYTES, larger=None):
        self.app = app
        self.default_bytes = max_bytes
        # Paths allowed a larger body ({path: bytes}): a class collection's zip import, say.
        self.larger = dict(larger or {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Each request has its own limit; the instance is shared by concurrent requests, so it is passed along.
        await self.limited(scope, receive, send, self.larger.get(scope.get("path"), self.default_bytes))

    @property
    def max_bytes(self):
        return self.default_bytes

    async def limited(self, scope, receive, send, max_bytes):
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > max_bytes):
            # A client that waits for "100 Continue" before sending has sent nothing yet: answer, read nothing.
            waiting = headers.get(b"expect", b"").lower() == b"100-continue"
            await self.refuse(scope, receive, send, drain_first=not waiting, max_bytes=max_bytes)
            return

        received = 0
        started = overflowed = complete = False

        async def counting_receive():
            nonlocal received, overflowed, complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > max_bytes:
                    overflowed = True
                    raise BodyTooLarge(max_bytes)
            return message

        async def watching_send(message):
            nonlocal started, complete
            if message["type"] == "http.response.start" and overflowed and not complete:
                # The route's own 413: read the rest of the body first, so the client is not reset mid-send.
                complete = True
                await drain(receive)
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Routes that read the body themselves get a 413 from FastAPI's handler; this catches the others.
            if started:
                raise
            await self.refuse(scope, receive, send, drain_first=not complete, max_bytes=max_bytes)

    async def refuse(self, scope, receive, send, drain_first=True, max_bytes=None):
        if drain_first:
            await drain(receive)
        response = responses.JSONResponse({"detail": too_large_message(max_bytes or self.max_bytes)}, status_code=413,
                                          headers={"Connection": "close"})
        await response(scope, receive, send)


async def drain(receive, max_bytes=DRAIN_BYTES, seconds=DRAIN_SECONDS):
    """Read and drop what is left of a request body, up to `max_bytes` and `seconds`; True if it was all read."""

    async def read_rest():
        dropped = 0
        while dropped <= max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return False  # The client went away.
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False

    try:
        return await asyncio.wait_for(read_rest(), seconds)
    except asyncio.TimeoutError:
        return False


# No request of the playground needs longer than this (a prediction takes milliseconds, a slow upload of 2 MB a few
# seconds): a client that keeps a request open past it gets a 503 and its connection back, and holds no worker.
REQUEST_SECONDS = 30.0


class RequestTimeLimit:
    """ASGI middleware: a request that has not been answered within `seconds` gets 503 and a one-line detail.

    A response already started (a long download, say) is let finish; the limit is on the wait for an answer.
    """

    def __init__(self, app, seconds=REQUEST_SECONDS):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def watched_send(message):
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        answering = asyncio.ensure_future(self.app(scope, receive, watched_send))
        try:
            await asyncio.wait_for(asyncio.shield(answering), timeout=self.seconds)
        except asyncio.TimeoutError:
            if started.is_set():
                await answering
                return
            answering.cancel()
            response = responses.JSONResponse(
                {"detail": f"the request took longer than {self.seconds:g} s; try again, with a smaller picture"},
                status_code=503)
            await response(scope, receive, send)


class RateLimit:
    """At most `per_minute` events per key (a student, an address) in any minute; `wait` says how long to wait.

    A sliding window of timestamps per key, in memory: a class of thirty is a few thousand numbers. Keys unused for
    a minute are dropped, so the table never grows with the number of visitors over a day.
    """

    def __init__(self, per_minute, clock=None):
        self.per_minute = per_minute
        self.clock = clock or time.monotonic
        self.seen = {}
        self.lock = threading.Lock()

    def wait(self, key, factor=1):
        """0 (and the event counted) when `key` may go on; otherwise the whole seconds until it may."""
        now = self.clock()
        allowed = self.per_minute * factor
        with self.lock:
            if len(self.seen) > 10_000:
                self.seen = {name: times for name, times in self.seen.items() if times and now - times[-1] < 60}
            times = [moment for moment in self.seen.get(key, []) if now - moment < 60]
            if len(times) >= allowed:
                self.seen[key] = times
                return max(1, int(60 - (now - times[0])) + 1)
            times.append(now)
            self.seen[key] = times
            return 0
