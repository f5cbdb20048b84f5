"""How `firstnet serve` holds up under a class's connections: a deadline for headers, bounds, and quiet logs.

uvicorn closes an idle kept-alive connection, but a new connection that never finishes its headers (a slowloris
client, or a phone that left the network) would stay open for ever and hold a file descriptor. Here it gets
HEADER_SECONDS to send them. The number of open connections is bounded (uvicorn answers 503 past it), the
process's file limit is raised as far as the system allows, so a laptop with a small default (256 on macOS) is
not the bound, and the event loop's "out of system resource" error is logged once a minute, not once per accept.
"""

import logging
import time

HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 1000
WANTED_FILES = 4096


def uvicorn_settings():
    """Keyword arguments for uvicorn.Config: the protocol with a header deadline (when it can be had), the bounds."""
    settings = {"limit_concurrency": MAX_CONNECTIONS, "timeout_keep_alive": KEEP_ALIVE_SECONDS}
    protocol = header_deadline_protocol()
    if protocol is not None:
        settings["http"] = protocol
    return settings


def header_deadline_protocol():
    """uvicorn's h11 protocol with a deadline for the first request's headers, or None (then uvicorn's own is used).

    It leans on uvicorn's h11 protocol class and its `cycle` attribute (set when a request's headers are in):
    uvicorn documents the class as `--http h11` but not its insides, so any surprise falls back to the default,
    without the deadline, and says so once.
    """
    try:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        if not callable(getattr(H11Protocol, "connection_made", None)):
            raise AttributeError("H11Protocol.connection_made")
    except Exception as error:  # Any change in uvicorn: serve without the deadline rather than not at all.
        logging.getLogger("firstnet").warning("no deadline for request headers (%s: %s)", type(error).__name__, error)
        return None

    class HeaderDeadline(H11Protocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            self.firstnet_deadline = self.loop.call_later(HEADER_SECONDS, self.firstnet_headers_late)

        def firstnet_headers_late(self):
            if getattr(self, "cycle", None) is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc):
            deadline = getattr(self, "firstnet_deadline", None)
            if deadline is not None:
                deadline.cancel()
            super().connection_lost(exc)

    return HeaderDeadline


def raise_file_limit(wanted=WANTED_FILES):
    """Raise this process's soft limit on open files towards `wanted` (never above the hard limit); the new limit."""
    try:
        import resource
    except ImportError:  # Windows has no such limit to raise.
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


class OncePerMinute(logging.Filter):
    """Lets a resource error through once a minute: with every file descriptor taken, the event loop would log the
    same error for every connection it cannot accept, thousands a second."""

    PATTERNS = ("out of system resource", "Too many open files")

    def __init__(self, seconds=60.0, clock=time.monotonic):
        super().__init__()
        self.seconds, self.clock, self.last, self.dropped = seconds, clock, None, 0

    def filter(self, record):
        text = record.getMessage()
        if not any(pattern in text for pattern in self.PATTERNS):
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.seconds:
            self.dropped += 1
            return False
        if self.dropped:
            record.msg = f"{text} ({self.dropped} more like it in the last minute)"
            record.args = ()
        record.exc_info = None  # One line, not a traceback per connection.
        self.last, self.dropped = now, 0
        return True


def quiet_resource_errors():
    """Install the once-a-minute filter on the loggers that report failed accepts (asyncio's and uvicorn's)."""
    flood = OncePerMinute()
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, OncePerMinute) for existing in logger.filters):
            logger.addFilter(flood)
    return flood
