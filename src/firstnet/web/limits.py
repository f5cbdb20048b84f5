"""A request-size limit: bodies over the limit get 413, whether the client announced their size honestly or not."""

from starlette import exceptions, responses

MAX_BODY_BYTES = 2 * 1024 * 1024


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

    def __init__(self, app, max_bytes=MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_bytes):
            await self.refuse(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            # Routes that read the body themselves get a 413 from FastAPI's handler; this catches the others.
            if started:
                raise
            await self.refuse(scope, receive, send)

    async def refuse(self, scope, receive, send):
        response = responses.JSONResponse({"detail": too_large_message(self.max_bytes)}, status_code=413,
                                          headers={"Connection": "close"})
        await response(scope, receive, send)
