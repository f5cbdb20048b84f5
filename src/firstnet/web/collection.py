"""The page's class collection API: add a labelled drawing, list, delete, export and import, score, and fine-tune.

The library is `firstnet.data.collection`; these routes only read requests and turn its one-line errors into statuses:
422 for a bad label or a picture that is not a digit, 409 for a full collection or a picture already labelled
otherwise, 404 for an unknown id, 503 while there is no model to score or fine-tune.
"""

import io
import json
import os
import pathlib
import subprocess
import sys
import threading

import fastapi
from fastapi import responses
from starlette import background, concurrency

from firstnet import runs
from firstnet.data import collection as library
from firstnet.errors import UserError

# The collection offers fine-tuning from this many pictures: enough for a held-out part with a few of each digit.
FINETUNE_READY = 50
IMPORT_PATH = "/api/collection/import"
# The zip import may be larger than the page's 2 MB uploads (web/limits.py): a class's pictures with their originals.
LARGER_BODIES = {IMPORT_PATH: library.MAX_IMPORT_BYTES}
default_folder = library.default_folder

ADD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "label"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the drawing or photo of one digit"},
                   "label": {"type": "string", "enum": list(library.DIGITS), "description": "the digit it shows"}}}}}}
IMPORT_BODY = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "a zip that GET /api/collection/export made"}}}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}}}}


def router(folder):
    """The collection's routes, for the collection in `folder`; the app includes it in one line."""
    collection = library.Collection(folder)
    tuner = FineTuner()
    api = fastapi.APIRouter(prefix="/api/collection", tags=["collection"])

    @api.post("", status_code=201, summary="Add a labelled drawing or photo to the class collection",
              openapi_extra={"requestBody": ADD_BODY},
              responses={200: {"description": "already in the collection with this label"},
                         409: {"description": "the collection is full, or holds this picture under another label"},
                         422: {"description": "a bad label, not an image, or a blank picture"}})
    async def add(request: fastapi.Request):
        """Prepare the picture as the page does (28x28, centred), keep it under its digit, and keep the original."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            raise fastapi.HTTPException(415, "send multipart/form-data with the picture in `file` and the digit in `label`")
        async with request.form(max_files=1, max_fields=10) as form:
            upload, label = form.get("file"), form.get("label")
            if upload is None or isinstance(upload, str):
                raise fastapi.HTTPException(422, "no file in the form: send the picture in a field named `file`")
            if not isinstance(label, str):
                raise fastapi.HTTPException(422, "no label in the form: send the digit, 0 to 9, in a field named `label`")
            data, name = await upload.read(), upload.filename or "the picture"
        item, added = await concurrency.run_in_threadpool(_answer, collection.add_upload, data, label, name)
        return responses.JSONResponse({"item": item, "added": added, **_counts(collection)},
                                      status_code=201 if added else 200)

    @api.get("", summary="Counts per digit, the most recent pictures, and fine-tuning's state")
    def summary():
        return {**collection.summary(), "finetune": tuner.status(), "finetune_ready": FINETUNE_READY}

    @api.delete("/{item_id}", status_code=204, summary="Remove a picture (and its original) from the collection")
    def delete(item_id: str):
        if not collection.delete(item_id):
            raise fastapi.HTTPException(404, f"no picture {item_id!r} in the collection; GET /api/collection lists them")
        return responses.Response(status_code=204)

    @api.get("/export", summary="The whole collection as a zip (unzipped, it is a collection folder)",
             response_class=responses.FileResponse)
    def export():
        path, remove = library.temporary_export(collection)
        return responses.FileResponse(path, media_type="application/zip", filename="firstnet-collection.zip",
                                      background=background.BackgroundTask(remove))

    @api.post("/import", summary="Add the pictures of a zip; pictures already present are not added twice",
              openapi_extra={"requestBody": IMPORT_BODY},
              responses={409: {"description": "the collection is full"}, 422: {"description": "not a usable zip"}})
    async def import_zip(request: fastapi.Request):
        """Answer with how many were `added`, were `already` there, `skipped` (not pictures) or had `conflicts`."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            async with request.form(max_files=1, max_fields=10) as form:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise fastapi.HTTPException(422, "no file in the form: send the zip in a field named `file`")
                data = await upload.read()
        else:
            data = await request.body()
        return await concurrency.run_in_threadpool(_answer, collection.import_zip, io.BytesIO(data))

    @api.get("/score", summary="How the loaded model reads our digits, beside its MNIST test accuracy")
    async def score(request: fastapi.Request):
        """`mnist_test` and `ours` accuracies, each digit's with a Wilson 95% interval, and the worst mistakes."""
        network = _network(request)
        return await concurrency.run_in_threadpool(_score, network, collection)

    @api.post("/finetune", status_code=202, summary="Fine-tune the loaded model on the collection (a new run)",
              responses={409: {"description": "already fine-tuning, or the collection is too small"}})
    def finetune(request: fastapi.Request):
        """Runs `firstnet train --from RUN --data COLLECTION` in the background; the new run is then loaded."""
        network = _network(request)
        if collection.count() < FINETUNE_READY:
            raise fastapi.HTTPException(409, f"the collection has {collection.count()} pictures; fine-tuning needs "
                                             f"{FINETUNE_READY} (a few of each digit): add more first")
        playground = request.app.state.playground
        if not tuner.start(network.model_path.parent, collection.root, playground.runs_root, playground.load):
            raise fastapi.HTTPException(409, "already fine-tuning; follow it with GET /api/collection")
        return tuner.status()

    return api


def _answer(call, *args):
    """Run a library call; its one-line errors become the statuses the module's docstring lists."""
    try:
        return call(*args)
    except (library.Full, library.LabelledOtherwise) as error:
        raise fastapi.HTTPException(409, str(error)) from None
    except UserError as error:
        raise fastapi.HTTPException(422, str(error)) from None


def _counts(collection):
    found = collection.summary(recent=0)
    return {"total": found["total"], "counts": found["counts"]}


def _network(request):
    network = request.app.state.playground.network
    if network is None:
        raise fastapi.HTTPException(503, "no trained model yet: train one first (`firstnet train`, or the page's button)")
    return network


def _score(network, collection):
    from firstnet import evaluate, shift

    images, labels, ids = _answer(library.read_pictures, collection.root)
    with network.lock:
        scores = evaluate.evaluate_model(network.model, images, labels)
    report = shift.score_report(scores["probabilities"], labels, network.metrics, ids=ids)
    for entry in report["worst"]:
        entry["picture"] = "data:image/png;base64," + _base64_png(images[entry["index"]])
    report["run"] = str(network.model_path.parent)
    report["note"] = shift.seen_note(network.metrics, collection.root)
    return report


def _base64_png(pixels):
    import base64

    return base64.b64encode(library.png_bytes(pixels)).decode("ascii")


class FineTuner:
    """One background fine-tuning (`firstnet train --from`'s) at a time, in a child process so the server keeps answering.

    The child has a session of its own: a server stopped meanwhile leaves it to finish its run (seconds), whole.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.state, self.message, self.run_dir, self.epoch, self.epochs, self.result = "idle", "", None, 0, None, None
        self.process = None

    def status(self):
        with self.lock:
            return {"state": self.state, "message": self.message, "epoch": self.epoch, "epochs": self.epochs,
                    "run": None if self.run_dir is None else str(self.run_dir), "result": self.result}

    def start(self, from_run, folder, runs_root, on_finished):
        with self.lock:
            if self.state == "running":
                return False
            self.run_dir = runs.new_run_dir(root=runs_root)
            self.state, self.message, self.epoch, self.epochs, self.result = "running", "starting", 0, None, None
            # The page's training child (web/live_child.py): it reports the loop's own events, one JSON a line.
            command = [sys.executable, "-m", "firstnet.web.live_child", "finetune", str(from_run), str(folder),
                       str(self.run_dir)]
            # A session of its own keeps Ctrl-C in the server's terminal from reaching the child.
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                            stdin=subprocess.DEVNULL, encoding="utf-8", errors="replace",
                                            start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._follow, args=(self.process, self.run_dir, on_finished), daemon=True).start()
        return True

    def _follow(self, process, run_dir, on_finished):
        last = []
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:  # Python's own words on standard error (a traceback): the last lines say what failed.
                last = (last + [line.strip()])[-3:] if line.strip() else last
                continue
            if event.get("kind") == "epoch_begin":
                with self.lock:
                    self.epoch, self.epochs = event.get("epoch", 0), event.get("epochs")
                    self.message = f"fine-tuning: epoch {self.epoch}/{self.epochs}"
            elif event.get("kind") == "error":
                last = [event.get("text", "")]
        code = process.wait()
        metrics = runs.read_metrics(run_dir) if code == 0 else None
        if metrics is None:
            if pathlib.Path(run_dir).is_dir() and not any(pathlib.Path(run_dir).iterdir()):
                pathlib.Path(run_dir).rmdir()
            self._finish("failed", f"fine-tuning failed: {last[-1] if last else f'exit code {code}'}")
            return
        try:
            on_finished(run_dir)
        except Exception as error:
            self._finish("failed", f"fine-tuned, but the model could not be loaded: {error}")
            return
        with self.lock:
            self.result = metrics.get("finetune")
        self._finish("finished", f"fine-tuned and loaded {run_dir}/")

    def _finish(self, state, message):
        with self.lock:
            self.state, self.message = state, message
