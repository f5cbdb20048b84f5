"""The web playground's FastAPI app: the page, `POST /api/predict`, `GET /api/model`, the class (who may do what:
roles.py), training (live_routes.py), the collection (collection.py), and offline docs."""

import asyncio
import base64
import binascii
import contextlib
import io
import json
import pathlib

from typing import Literal

import fastapi
import fastapi_offline
import pydantic
from fastapi import responses, staticfiles
from starlette import concurrency

from firstnet import __version__, classroom, runs
from firstnet.data import collection as class_collection
from firstnet.errors import UserError
from firstnet.web import (collection as web_collection, knobs as web_knobs, lesson_routes, limits, live, live_routes,
                          network as web_network, roles, rules as web_rules, shown)

STATIC = pathlib.Path(__file__).parent / "static"
# The page loads nothing from elsewhere; the browser is told so, which also proves it in a classroom without internet.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
IMAGE_FIELD = "file"
TRAIN_COMMAND = "firstnet train"
# Pictures decoded at once (the rest wait their turn) and how many may wait: a class drawing together is served in
# turn, and a flood of large pictures gets a quick 503 instead of holding the memory of all of them at once.
DECODING_AT_ONCE = 2
DECODING_WAITING = 32
# How often one student may add a picture (one address three times as often: a shared laptop).
ADDS_PER_MINUTE = 30

PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [IMAGE_FIELD],
                "properties": {IMAGE_FIELD: {"type": "string", "format": "binary", "description": "a PNG, JPEG, BMP, GIF or WebP picture of one digit"}},
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "description": "base64 PNG, optionally as a data: URL"}},
            }
        },
    },
}


class Playground:
    """What the app holds between requests: the loaded network (or None), the training from the page, the class."""

    def __init__(self, model_path, runs_root, data, announce, room, guard):
        self.runs_root = runs_root
        # The thread that learns a run's "not a digit" rule when its folder has none (web/rules.py).
        self.learner = web_rules.Learner()
        self.network = web_network.load_network(model_path, runs_root, self.learner)
        self.training = live.Session(runs_root, self.load, data=data, announce=announce)
        self.room = room
        self.guard = guard
        self.decoding = asyncio.Semaphore(DECODING_AT_ONCE)
        self.waiting = 0

    def load(self, run_dir):
        self.network = web_network.load_network(run_dir, self.runs_root, self.learner)

    async def busy(self, function, *args):
        """Run CPU work (decoding a picture and the network's arithmetic, fooling a digit) in the thread pool, off the
        event loop, DECODING_AT_ONCE at a time; a 503 when DECODING_WAITING wait already."""
        if self.waiting >= DECODING_WAITING:
            raise fastapi.HTTPException(503, "the server is busy reading other pictures; try again in a moment",
                                        headers={"Retry-After": "2"})
        self.waiting += 1
        try:
            async with self.decoding:
                return await concurrency.run_in_threadpool(function, *args)
        finally:
            self.waiting -= 1

    def model_info(self):
        """What `GET /api/model` tells anyone: the model's facts, with its run named as the page may show it."""
        network = self.network
        info = network.info() if network is not None else {"loaded": False}
        if info["loaded"]:
            info["run"] = shown.shown_path(info["run"], self.runs_root)
            info["model_path"] = shown.shown_path(info["model_path"], self.runs_root)
            # Where the data lay on the server (a path in the run's metrics) is not the page's to say.
            info.pop("data_source", None)
        info["training"] = self.training.status()
        info["train_command"] = TRAIN_COMMAND
        info["runs_root"] = shown.shown_path(self.runs_root, self.runs_root)
        return info


def create_app(model_path=None, runs_root=runs.DEFAULT_RUNS_ROOT, train_on_start=False, train_knobs=None, announce=None,
               data=None, collection=None, guard=None, review_first=False):
    """The playground app for `model_path` (a run folder or .keras file) or, by default, the newest run in `runs_root`.

    With no trained model the app still starts: the page says so and offers `firstnet train` or a button that
    trains one (`POST /api/train`); `train_on_start` starts that training as soon as the server runs, with
    `train_knobs` (a dict of knobs.Knobs; the tutorial's recipe by default). `data` (`firstnet serve --data`) is
    what every run trains on; `announce` receives progress lines. `guard` (a roles.Classroom) holds the teacher's
    token and the names the server answers to (a new token, this computer's names only, by default);
    `review_first` holds students' pictures for the teacher's review.
    """
    guard = guard or roles.Classroom()
    room = classroom.Classroom(class_collection.Collection(collection or web_collection.default_folder(runs_root)),
                               review_first=review_first)
    playground = Playground(model_path, runs_root, data, announce, room, guard)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if train_on_start and playground.network is None:
            playground.training.start(web_knobs.Knobs(**(train_knobs or {})))
        yield
        playground.training.close()
        playground.learner.close()

    # FastAPIOffline serves Swagger UI's files from the fastapi-offline package instead of a CDN: /docs works offline.
    app = fastapi_offline.FastAPIOffline(
        title="firstnet playground",
        version=__version__,
        description="Draw a digit, and see what the tutorial's network answers; train one and watch it learn. "
                    "The page is at `/` (`/?view=projector` for a projector).",
        redoc_url=None,
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.playground = playground
    app.add_middleware(limits.BodyLimit, max_bytes=limits.MAX_BODY_BYTES, larger=web_collection.LARGER_BODIES)
    app.add_middleware(limits.RequestTimeLimit, seconds=limits.REQUEST_SECONDS)
    # Added last, so it runs first: a request from a foreign name or another site is refused before anything else.
    app.add_middleware(roles.Guard, classroom=guard, router=app.router)
    app.mount("/static", staticfiles.StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return responses.FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY,
                                                                      "Cache-Control": "no-cache",
                                                                      "Referrer-Policy": "no-referrer"})

    @app.get("/api/class", response_model=ClassInfo, summary="Who you are here, and how students join")
    def class_info(request: fastapi.Request):
        """`role` is `teacher` (the teacher's link was opened in this browser) or `student`; `students_url` is the
        address students open (also as a QR code at /api/class/qr.svg)."""
        info = {"role": request.state.role, "students_url": guard.students_url, "review_first": room.review_first,
                "student_training": False, "keeps": KEEPS}
        if request.state.role == roles.TEACHER:
            info["pending"] = len(room.pending())
            info["roles"] = [{"method": method, "path": path, "who": who} for method, path, who in roles.role_table()]
        return info

    @app.post("/api/class", response_model=ClassInfo, summary="The teacher's settings for the class")
    def class_settings(settings: ClassSettings, request: fastapi.Request):
        if settings.review_first is not None:
            room.review_first = settings.review_first
        return class_info(request)

    @app.get("/api/class/qr.svg", summary="The students' address as a QR code (SVG), for phones to join by camera",
             response_class=responses.Response, responses={404: {"description": "the server is on this computer only"}})
    def class_qr():
        if not guard.students_url:
            raise fastapi.HTTPException(404, "this server listens on this computer only (start it with --host 0.0.0.0 "
                                             "for a class)")
        return responses.Response(qr_svg(guard.students_url), media_type="image/svg+xml",
                                  headers={"Cache-Control": "no-cache"})

    @app.get("/api/model", response_model=live_routes.ModelInfo,
             summary="The loaded model, its test accuracy, and any training in progress")
    def model_info():
        return playground.model_info()

    @app.get("/api/runs", summary="The finished runs the teacher may choose to answer the class, newest last")
    def finished_runs():
        current = playground.network.info()["run"] if playground.network is not None else None
        return {"current": current, "runs": [
            {"name": folder.name, "run": str(folder), "test_accuracy": metrics.get("test_accuracy"),
             "model": metrics.get("model", "dense"), "finished_at": metrics.get("finished_at")}
            for folder, metrics in runs.list_runs(runs_root) if isinstance(metrics, dict)]}

    @app.post("/api/model", response_model=live_routes.ModelInfo, summary="Choose which finished run answers the class",
              responses={404: {"description": "no finished run of that name in the runs folder"},
                         422: {"description": "the run's model could not be loaded"}})
    async def choose_model(choice: ModelChoice):
        """`run` is a run folder's name from `GET /api/runs`; names only, so nothing outside the runs folder loads."""
        found = [folder for folder, _ in runs.list_runs(runs_root) if folder.name == choice.run]
        if not found:
            raise fastapi.HTTPException(404, f"no finished run {choice.run!r} in {runs_root}/; GET /api/runs lists them")
        try:
            await concurrency.run_in_threadpool(playground.load, found[0])
        except (UserError, ValueError, OSError) as error:
            raise fastapi.HTTPException(422, f"{choice.run}: the model could not be loaded ({error})") from None
        return playground.model_info()

    live_routes.add_routes(app, playground)
    # What deep learning is not: fool it, and a confusion cell's pictures (why and "not a digit" come with predict).
    lesson_routes.add_routes(app, playground, playground.busy)
    # The class collection (`serve --collection DIR`, else collection/ beside the runs): web/collection.py.
    web_collection.add_routes(app, room, limits.RateLimit(ADDS_PER_MINUTE))

    @app.post("/api/predict", summary="Read the digit in a picture", openapi_extra={"requestBody": PREDICT_BODY},
              responses={413: {"description": "body over 2 MB"}, 422: {"description": "not an image, too large, or blank"},
                         503: {"description": "no trained model yet"}})
    async def predict_digit(request: fastapi.Request):
        """Answer with `digit`, the ten `probabilities`, the 28x28 `input` the network saw (0..255), and the
        strongest `hidden` units, each with its first-layer weights as a 28x28 picture and its votes for each digit.
        `explanation` says why (each pixel's share of the digit's score, 28x28; null for pictures other than 28x28
        grey); on a digit run `not_a_digit` says whether it looks like the digits the network learned (null while
        the rule is learnt, see `GET /api/model`'s `not_a_digit_rule`), with `unlike_digits` and the
        `calibrated_probability` of the digit it would choose."""
        image_bytes, name = await read_image(request)
        network = playground.network
        if network is None:
            raise fastapi.HTTPException(503, f"no trained model yet: run `{TRAIN_COMMAND}` and restart "
                                             "`firstnet serve`, or train one from the page (the teacher's link)")
        try:
            answer = await playground.busy(network.analyse, image_bytes, name)
        except UserError as error:
            raise fastapi.HTTPException(422, str(error)) from None
        # The answer is plain JSON already; FastAPI's generic encoder would walk its 7,000 numbers one by one.
        return responses.JSONResponse(answer)

    missing = roles.missing_rules(app)
    if missing:
        raise RuntimeError(f"routes without a rule for who may call them (add them to web/roles.py ROUTES): {missing}")
    return app


# What a student is told before their first picture is added, in the page and at /api/class.
KEEPS = ("The class keeps your picture as the network sees it (28x28 pixels) and your drawing, shrunk to at most "
         "256x256. No name: this browser gets a random id, so you can see your pictures and take them back "
         "(“Your pictures”, then “Take back”). Only the teacher can see everyone's pictures or export them.")


class ClassInfo(pydantic.BaseModel):
    """Who the caller is here and how students join."""

    model_config = pydantic.ConfigDict(extra="allow")
    role: Literal["teacher", "student"]
    students_url: str | None
    review_first: bool
    student_training: bool
    keeps: str


class ModelChoice(pydantic.BaseModel):
    """Which finished run answers the class."""

    model_config = pydantic.ConfigDict(extra="forbid")
    run: str = pydantic.Field(min_length=1, max_length=255, description="a run folder's name, from GET /api/runs")


class ClassSettings(pydantic.BaseModel):
    """What the teacher may change while the class runs."""

    model_config = pydantic.ConfigDict(extra="forbid")
    review_first: bool | None = pydantic.Field(None, description="hold students' pictures until the teacher accepts them")


def qr_svg(url):
    """The address as a QR code, SVG text (segno: a small, dependency-free QR encoder)."""
    import segno

    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=8, border=2, dark="#000", light="#fff")
    return buffer.getvalue()


async def read_image(request):
    """The picture's bytes and a name for messages, from a multipart `file` field or JSON {"image": base64}."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        # Used as a context manager, the form closes its spooled upload files when the block ends.
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get(IMAGE_FIELD)
            if upload is None or isinstance(upload, str):
                raise fastapi.HTTPException(422, f"no file in the form: send the picture in a field named `{IMAGE_FIELD}`")
            return await upload.read(), upload.filename or "upload"
    if content_type == "application/json":
        try:
            encoded = json.loads(await request.body())["image"]
        except (ValueError, TypeError, KeyError):
            raise fastapi.HTTPException(422, 'expected JSON like {"image": "<base64 PNG>"}') from None
        if not isinstance(encoded, str):
            raise fastapi.HTTPException(422, '"image" must be a string of base64 (a data: URL is fine too)')
        return decode_base64_image(encoded), 'the "image" field'
    raise fastapi.HTTPException(415, f"send multipart/form-data with a `{IMAGE_FIELD}` field, or JSON {{\"image\": base64}}")


def decode_base64_image(encoded):
    """Bytes from base64 text, with or without a `data:image/png;base64,` prefix (what canvas.toDataURL gives)."""
    if encoded.startswith("data:"):
        header, _, encoded = encoded.partition(",")
        if not header.endswith(";base64"):
            raise fastapi.HTTPException(422, "the data: URL must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise fastapi.HTTPException(422, '"image" is not valid base64') from None
