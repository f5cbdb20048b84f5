"""`firstnet serve`: bind the address, say where the page is, and run the playground on uvicorn."""

import errno
import pathlib
import socket

from firstnet import runs
from firstnet.errors import UserError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def bind(host, port):
    """A listening socket, bound before the server starts so a busy port is one clear line, not a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except socket.gaierror:
        raise UserError(f"--host {host}: not an address this computer has; use 127.0.0.1 (this computer only)") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (another `firstnet serve`?); "
                            f"choose another with --port {port + 1 if port else 8001}") from None
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); try --host 127.0.0.1 --port 8000") from None


def page_url(sock, host=None):
    """The page's address on this computer (or at `host`, an address other computers reach it by)."""
    bound, port = sock.getsockname()[:2]
    host = host or ("127.0.0.1" if bound in ("0.0.0.0", "::") else bound)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def network_address(bound):
    """The address students' devices reach this computer by: the one bound, or for 0.0.0.0 this computer's own.

    Asking the system which address it would use to reach a documentation-only address (192.0.2.1) sends
    nothing: a UDP socket's connect only chooses the route.
    """
    if bound not in ("0.0.0.0", "::", ""):
        return bound
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        if not address.startswith("127."):
            return address
    except OSError:
        pass
    try:
        for *_, found in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if not found[0].startswith("127."):
                return found[0]
    except OSError:
        pass
    return None


def terminal_qr(url):
    """The students' address as a QR code drawn with text blocks, for phones to join by camera from the terminal."""
    import io

    import segno

    buffer = io.StringIO()
    segno.make(url, error="m").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue().rstrip("\n")


def serve(model=None, host="127.0.0.1", port=8000, runs_root=runs.DEFAULT_RUNS_ROOT, train=False, log=None, data=None,
          collection=None, allow_hosts=(), review_first=False):
    """Load the model (or note that there is none), bind, print the teacher's and the students' links, serve until Ctrl-C.

    `data` (`--data PATH`) is what training from the page trains on; by default, the same sources as `firstnet train`.
    `allow_hosts` are names the server answers to besides its addresses; `review_first` holds students' pictures
    until the teacher accepts them.
    """
    import uvicorn

    from firstnet.web import app as web_app, connections, roles

    class EndingStreams(uvicorn.Server):
        """uvicorn's server, which ends the training event streams first when it stops: it waits for every response
        to end, and a stream that follows run after run (a projector's) never would, so Ctrl-C would hang."""

        async def shutdown(self, *args, **kwargs):  # Whatever uvicorn passes, passed on as it came.
            application.state.playground.training.end_streams()
            await super().shutdown(*args, **kwargs)

    log = log or (lambda line: print(line, flush=True))

    # A wrong --data is said now, not by every run the page starts.
    if data is not None and not pathlib.Path(data).exists():
        raise UserError(f"--data {data}: no such file or folder; point it at mnist.npz or a folder of digits")
    # Bind first: a busy port should be said at once, not after loading the model.
    sock = bind(host, port)
    remote = host not in LOCAL_HOSTS
    address = network_address(sock.getsockname()[0]) if remote else None
    students_url = page_url(sock, address) if address else None
    guard = roles.Classroom(allow_hosts=allow_hosts, remote=remote, students_url=students_url)
    try:
        application = web_app.create_app(model, runs_root, train_on_start=train, announce=lambda line: log(f"  {line}"),
                                         data=data, collection=collection, guard=guard, review_first=review_first)
    except BaseException:
        sock.close()
        raise
    network = application.state.playground.network
    if network is not None:
        info = network.info()
        accuracy = info["test_accuracy"]
        log(f"model: {info['model_path']}" + ("" if accuracy is None else f" (test accuracy {accuracy:.4f})"))
    elif train:
        log(f"no trained model in {runs_root}/ yet: training one now with the tutorial's recipe (the page shows progress)")
    else:
        log(f"no trained model in {runs_root}/ yet: the page offers to train one, or run `firstnet train` "
            "and then `firstnet serve` again (or `firstnet serve --train`)")
    from firstnet.data import collection as class_collection

    log(f"class collection: {collection or class_collection.default_folder(runs_root)} (pictures labelled on the page)")
    if review_first:
        log("review first: students' pictures wait for you to accept them (the page's review panel)")
    if remote:
        log(f"listening on {host}: students on your network open the students' link (they can draw, add and take "
            "back their own pictures; nothing else)")
        if students_url:
            log(f"students' link: {students_url}")
            log(terminal_qr(students_url))
        else:
            log("students' link: this computer's address on the network could not be found; students open "
                f"http://<this computer's address>:{sock.getsockname()[1]}/")
    teacher_url = f"{page_url(sock)}?token={guard.token}"
    # The teacher's link carries the token: whoever opens it may train, export and delete. It is printed here only.
    log(f"firstnet playground: {teacher_url}   (the teacher's link: keep it to yourself; Ctrl-C to stop)")
    connections.raise_file_limit()
    connections.quiet_resource_errors()
    # Access logs would bury the URL under one line per stroke; warnings and errors still show.
    server = EndingStreams(uvicorn.Config(application, log_level="warning", lifespan="on",
                                          **connections.uvicorn_settings()))
    server.run(sockets=[sock])
