"""The training routes of the playground's API: start, pause, resume and stop a run, and its Server-Sent Events."""

import os
from typing import Literal

import fastapi
import pydantic
from fastapi import responses

from firstnet.web import knobs as web_knobs, live

EVENTS_DESCRIPTION = """Server-Sent Events (`text/event-stream`): each `data:` line is one JSON event with a `kind`
and a `seq` (also the SSE `id`, so a browser that reconnects gets what it missed).

A viewer first gets the current (or last) run so far, then each event as it comes; the stream follows run after
run. Kinds, in order: `start` (the knobs), `loading`, `begin` (what is trained; the strip of fixed test digits as
base64 int8 pictures, their labels), `loop` (epochs, steps per epoch), `evaluation` (before training and at each
epoch's end: the confusion matrix and the strip's guesses), then per epoch `epoch_begin`, `step` (at most 20 a second:
`epoch`, `step`, `steps`, `global_step`, `loss` and `accuracy` as the epoch's running means, `batch_loss` and
`batch_accuracy` over the batches since the last point, `steps_per_second`, `eta_seconds`), `snapshot` (at most 4
a second: the first layer's weights of 8 units, or the convnet's first 16 filters, and for the dense network the
strip's guesses), `epoch_end` (with `val_loss` and `val_accuracy` when digits are held out); `paused` and
`resumed`; `note`; `end`; and last `saved` (the run folder, now the model that answers drawings, with its test
accuracy; `interrupted` when it was stopped early), `stopped` (stopped before anything was trained) or `failed`.
Comment lines (`: keep-alive`) come every 15 s of quiet."""


class TrainingStatus(pydantic.BaseModel):
    """Where training from the page stands."""

    state: Literal["idle", "running", "finished", "stopped", "failed"]
    paused: bool
    message: str
    epoch: int
    epochs: int | None
    step: int
    steps: int | None
    fraction: float = pydantic.Field(description="how much of the run is done, 0 to 1")
    run: str | None = pydantic.Field(description="the run folder it saves into")
    knobs: dict | None = pydantic.Field(description="what the run was asked to train")


class ModelInfo(pydantic.BaseModel):
    """The loaded model (when there is one; its facts besides these are listed too) and training in progress."""

    model_config = pydantic.ConfigDict(extra="allow")
    loaded: bool
    training: TrainingStatus
    train_command: str
    runs_root: str


# Live viewers at once: two projectors and a class of thirty with a laptop and a phone each, with room to spare.
# Each stream is a few kilobytes a second; past the cap a viewer gets a clear 503, not a slow server for all.
MAX_VIEWERS = 100
# The page may fill the runs folder up to this much; past it, a new run from the page is refused until old ones
# are deleted. A started and stopped run of 4,096 hidden units saves about 50 MB.
MAX_RUNS_BYTES = 2 * 1024**3

BUSY = {409: {"description": "a run is already going (start), or none is (pause, resume, stop); `detail` says what to do"}}


def add_routes(app, playground):
    """Add the training routes to `app`; `playground.training` is the live.Session they drive."""

    def session():
        return playground.training

    def command(word):
        try:
            return session().command(word)
        except live.Busy as error:
            raise fastapi.HTTPException(409, str(error)) from None

    @app.post("/api/train", status_code=202, response_model=ModelInfo, responses={
        **BUSY, 422: {"description": "a knob out of range or of the wrong type; `detail` says what is allowed"}},
        summary="Start training in the background, with the knobs given (or the tutorial's recipe)")
    def start_training(knobs: web_knobs.Knobs | None = None):
        """Starts one run in a process of its own; follow it with `GET /api/train/events`. Knobs left out take the
        recipe's values (the tutorial's, `fast`'s, or the convnet's). The saved run becomes the model that answers."""
        used = runs_folder_bytes(playground.runs_root)
        if used > MAX_RUNS_BYTES:
            raise fastapi.HTTPException(409, f"the runs folder {playground.runs_root}/ holds {used / 2**30:.1f} GB, "
                                             f"more than the {MAX_RUNS_BYTES / 2**30:.0f} GB the page may fill; "
                                             "delete old runs first")
        try:
            session().start(knobs or web_knobs.Knobs())
        except live.Busy as error:
            raise fastapi.HTTPException(409, str(error)) from None
        return playground.model_info()

    @app.get("/api/train", response_model=TrainingStatus, summary="Where training from the page stands")
    def training_status():
        return session().status()

    @app.post("/api/train/pause", response_model=TrainingStatus, responses=BUSY,
              summary="Pause the run between two batches")
    def pause_training():
        return command("pause")

    @app.post("/api/train/resume", response_model=TrainingStatus, responses=BUSY, summary="Resume a paused run")
    def resume_training():
        return command("resume")

    @app.post("/api/train/stop", response_model=TrainingStatus, responses=BUSY,
              summary="Stop the run between two batches; what it trained so far is evaluated and saved")
    def stop_training():
        return command("stop")

    @app.get("/api/train/events", summary="The run's progress as Server-Sent Events", description=EVENTS_DESCRIPTION,
             response_class=responses.StreamingResponse,
             responses={503: {"description": f"{MAX_VIEWERS} viewers already; Retry-After says when to try again"},
                        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "an endless stream of `id:` and `data:` lines (JSON events)"}})
    def training_events(until_end: bool = fastapi.Query(False, description="close the stream when the run has "
                                                        "ended (for scripts); by default it follows run after run"),
                        last_event_id: str | None = fastapi.Header(None, description="sent by a browser that "
                                                                   "reconnects: the last `id` it got")):
        if session().viewer_count() >= MAX_VIEWERS:
            raise fastapi.HTTPException(503, f"{MAX_VIEWERS} viewers are following the training already, the most "
                                             "this server serves; watch on the projector", headers={"Retry-After": "30"})
        stream = session().stream(live.last_event_id(last_event_id), until_end=until_end)
        # No caching and no proxy buffering: each event must reach the page as soon as it is sent.
        return responses.StreamingResponse(stream, media_type="text/event-stream",
                                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/projector", include_in_schema=False)
    def projector():
        return responses.RedirectResponse("/?view=projector")


def runs_folder_bytes(root):
    """How many bytes the runs folder holds (links are not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
