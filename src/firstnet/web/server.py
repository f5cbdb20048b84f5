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


def page_url(sock):
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(model=None, host="127.0.0.1", port=8000, runs_root=runs.DEFAULT_RUNS_ROOT, train=False, log=None, data=None,
          collection=None):
    """Load the model (or note that there is none), bind, print the URL, and serve until Ctrl-C.

    `data` (`--data PATH`) is what training from the page trains on; by default, the same sources as `firstnet train`.
    """
    import uvicorn

    from firstnet.web import app as web_app

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
    try:
        application = web_app.create_app(model, runs_root, train_on_start=train, announce=lambda line: log(f"  {line}"),
                                         data=data, collection=collection)
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
    if host not in LOCAL_HOSTS:
        log(f"listening on {host}: other computers on your network can open this page too")
    log(f"firstnet playground: {page_url(sock)}   (Ctrl-C to stop)")
    # Access logs would bury the URL under one line per stroke; warnings and errors still show.
    server = EndingStreams(uvicorn.Config(application, log_level="warning", lifespan="on"))
    server.run(sockets=[sock])
