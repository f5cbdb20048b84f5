"""The page's class collection API: add a labelled drawing, your own pictures, review, export and import, score, fine-tune.

The library is `firstnet.data.collection` (the pictures) and `firstnet.classroom` (who added which, the review queue);
these routes only read requests and turn their one-line errors into statuses: 422 for a bad label or a picture that
is not a digit, 409 for a full collection or a picture already labelled otherwise, 404 for an unknown id, 429 for
too many at once, 503 while there is no model to score or fine-tune. Who may call each route: web/roles.py.
"""

import io
import json
import os
import subprocess
import sys
import threading

import fastapi
import pydantic
from fastapi import responses
from starlette import background, concurrency

from firstnet import classroom, runs
from firstnet.data import collection as library
from firstnet.errors import UserError
from firstnet.web import network as web_network, roles, shown

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


def add_routes(app, room, rate_limit):
    """Add the collection's routes to `app`, for the classroom `room` (a classroom.Classroom); see web/roles.py
    for who may call each. `rate_limit` bounds how often one student, or one address, may add a picture."""
    collection = room.collection
    tuner = FineTuner()
    importer = ImportJob()
    exports = threading.BoundedSemaphore(1)
    tags = ["collection"]

    @app.post("/api/collection", status_code=201, tags=tags, summary="Add a labelled drawing or photo to the class collection",
              openapi_extra={"requestBody": ADD_BODY},
              responses={200: {"description": "already in the collection with this label"},
                         202: {"description": "waiting for the teacher's review (review first is on)"},
                         409: {"description": "the collection is full, or holds this picture under another label"},
                         422: {"description": "a bad label, not an image, or a blank picture"},
                         429: {"description": "too many pictures at once; Retry-After says when to try again"}})
    async def add(request: fastapi.Request):
        """Prepare the picture as the page does (28x28, centred), keep it under its digit with the original drawing
        (at most 256x256), and remember which student added it (a random id, no name)."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            raise fastapi.HTTPException(415, "send multipart/form-data with the picture in `file` and the digit in `label`")
        student = request.state.student
        # The teacher is not limited (an import is the way to add many); a student is, per browser and per address.
        wait = request.state.role != roles.TEACHER and (rate_limit.wait(("student", student))
                                                        or rate_limit.wait(("address", _address(request)), factor=3))
        if wait:
            raise fastapi.HTTPException(429, f"that is a lot of pictures at once: try again in {wait} s",
                                        headers={"Retry-After": str(wait)})
        async with request.form(max_files=1, max_fields=10) as form:
            upload, label = form.get("file"), form.get("label")
            if upload is None or isinstance(upload, str):
                raise fastapi.HTTPException(422, "no file in the form: send the picture in a field named `file`")
            if not isinstance(label, str):
                raise fastapi.HTTPException(422, "no label in the form: send the digit, 0 to 9, in a field named `label`")
            data, name = await upload.read(), "the picture"
        item, state = await concurrency.run_in_threadpool(_answer, room.add, data, label, student, name,
                                                          web_network.MAX_PIXELS)
        status = {"added": 201, "already": 200, "pending": 202}[state]
        return responses.JSONResponse({"item": classroom.pending_view(item), "added": state == "added",
                                       "state": state, **_counts(collection)}, status_code=status)

    @app.get("/api/collection", tags=tags, summary="The whole class's collection: counts, recent pictures, fine-tuning")
    def summary():
        return {**collection.summary(), "finetune": tuner.status(), "finetune_ready": FINETUNE_READY,
                "review_first": room.review_first, "pending": len(room.pending())}

    @app.get("/api/collection/mine", tags=tags, summary="Your own pictures (this browser's), and the class's counts")
    def mine(request: fastapi.Request):
        """The pictures this browser added, in the collection or waiting for review; never anyone else's."""
        items = room.mine(request.state.student)
        return {"items": items, "review_first": room.review_first, **_counts(collection)}

    @app.get("/api/collection/mine/score", tags=tags, summary="How the network reads your own pictures")
    async def my_score(request: fastapi.Request):
        network = _network(request)
        return await concurrency.run_in_threadpool(_my_score, network, room, request.state.student,
                                                   request.app.state.playground.runs_root)

    @app.delete("/api/collection/{item_id}", status_code=204, tags=tags,
                summary="Take back a picture (a student: only their own; the teacher: any)")
    def delete(item_id: str, request: fastapi.Request):
        student = None if request.state.role == roles.TEACHER else request.state.student
        if not room.delete(item_id, student=student):
            raise fastapi.HTTPException(404, f"no picture {item_id!r} of yours in the collection; "
                                             "GET /api/collection/mine lists them")
        return responses.Response(status_code=204)

    @app.get("/api/collection/export", tags=tags, response_class=responses.FileResponse,
             summary="The whole collection as a zip (unzipped, it is a collection folder); one export at a time",
             responses={429: {"description": "another export is being made; Retry-After says when to try again"}})
    async def export():
        if not exports.acquire(blocking=False):
            raise fastapi.HTTPException(429, "an export is being made already; try again in a few seconds",
                                        headers={"Retry-After": "5"})
        try:
            path, remove = await concurrency.run_in_threadpool(library.temporary_export, collection)
        finally:
            exports.release()
        return responses.FileResponse(path, media_type="application/zip", filename="firstnet-collection.zip",
                                      background=background.BackgroundTask(remove))

    @app.post(IMPORT_PATH, status_code=202, tags=tags, openapi_extra={"requestBody": IMPORT_BODY},
              summary="Start adding the pictures of a zip (a job: GET this path for its report)",
              responses={409: {"description": "an import is running already"}, 422: {"description": "not a usable zip"}})
    async def import_zip(request: fastapi.Request):
        """Pictures already present are not added twice; the report says how many were `added`, were `already`
        there, `skipped` (not pictures) or had `conflicts`."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            async with request.form(max_files=1, max_fields=10) as form:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise fastapi.HTTPException(422, "no file in the form: send the zip in a field named `file`")
                data = await upload.read()
        elif content_type in ("application/zip", "application/octet-stream", "application/x-zip-compressed"):
            data = await request.body()
        else:
            raise fastapi.HTTPException(415, "send the zip as multipart/form-data (field `file`) or application/zip")
        _answer(library.check_import, data)  # Not a zip, or too big: one line now, not a failed job later.
        if not importer.start(collection, data):
            raise fastapi.HTTPException(409, "an import is running already; GET /api/collection/import says how far")
        return importer.status()

    @app.get(IMPORT_PATH, tags=tags, summary="The import job: running, or its report when done")
    def import_status():
        return importer.status()

    @app.get("/api/collection/score", tags=tags, summary="How the loaded model reads the class's digits, beside MNIST's")
    async def score(request: fastapi.Request):
        """`mnist_test` and `ours` accuracies, each digit's with a Wilson 95% interval, and the worst mistakes."""
        network = _network(request)
        return await concurrency.run_in_threadpool(_score, network, collection)

    @app.post("/api/collection/finetune", status_code=202, tags=tags,
              summary="Fine-tune the loaded model on the collection (a new run)",
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

    @app.get("/api/collection/review", tags=tags, summary="The pictures waiting for the teacher's review, oldest first")
    def review_queue():
        return {"review_first": room.review_first, "items": [classroom.pending_view(item) for item in room.pending()]}

    @app.post("/api/collection/review/{item_id}", tags=tags, summary="Accept a waiting picture into the collection, or reject it",
              responses={404: {"description": "no picture with that id is waiting"}})
    async def review(item_id: str, decision: Decision):
        result = await concurrency.run_in_threadpool(_answer, room.review, item_id, decision.accept)
        if result is None:
            raise fastapi.HTTPException(404, f"no picture {item_id!r} is waiting for review")
        return result

    return tuner


class Decision(pydantic.BaseModel):
    """The teacher's word on a waiting picture."""

    model_config = pydantic.ConfigDict(extra="forbid")
    accept: bool = pydantic.Field(description="true: it joins the collection; false: it is deleted")


class ImportJob:
    """One zip import at a time, in a thread: the request answers at once, and GET reports when it is done."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state, self.report, self.message = "idle", None, ""

    def status(self):
        with self.lock:
            return {"state": self.state, "report": self.report, "message": self.message}

    def start(self, collection, data):
        with self.lock:
            if self.state == "running":
                return False
            self.state, self.report, self.message = "running", None, "importing"
        threading.Thread(target=self._run, args=(collection, data), daemon=True).start()
        return True

    def _run(self, collection, data):
        try:
            report = collection.import_zip(io.BytesIO(data))
            state, message = "finished", f"imported {report['added']} new pictures"
        except UserError as error:
            report, state, message = None, "failed", str(error)
        except Exception as error:  # Reported, never lost: the job's state is what the page reads.
            report, state, message = None, "failed", f"the import failed: {type(error).__name__}: {str(error)[:120]}"
        with self.lock:
            self.state, self.report, self.message = state, report, message


def _address(request):
    return request.client.host if request.client else "unknown"


def _my_score(network, room, student, runs_root):
    images, labels = room.pictures_of(student)
    run = shown.shown_path(network.model_path.parent, runs_root)
    if not len(labels):
        return {**classroom.summary_of(images, labels, None), "run": run}
    from firstnet import evaluate

    with network.lock:
        scores = evaluate.evaluate_model(network.model, images, labels)
    return {**classroom.summary_of(images, labels, scores["probabilities"]), "run": run}


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
        self.process = self.runs_root = None

    def status(self):
        with self.lock:
            return {"state": self.state, "message": self.message, "epoch": self.epoch, "epochs": self.epochs,
                    "run": shown.shown_path(self.run_dir, self.runs_root), "result": self.result}

    def start(self, from_run, folder, runs_root, on_finished):
        with self.lock:
            if self.state == "running":
                return False
            self.run_dir, self.runs_root = runs.reserve_run_dir(root=runs_root), runs_root
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
            runs.release_reserved(run_dir)
            self._finish("failed", f"fine-tuning failed: {last[-1] if last else f'exit code {code}'}")
            return
        try:
            on_finished(run_dir)
        except Exception as error:
            self._finish("failed", f"fine-tuned, but the model could not be loaded: {error}")
            return
        with self.lock:
            self.result = metrics.get("finetune")
        self._finish("finished", f"fine-tuned and loaded {shown.shown_path(run_dir, self.runs_root)}/")

    def _finish(self, state, message):
        with self.lock:
            self.state, self.message = state, message
