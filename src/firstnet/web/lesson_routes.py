"""The routes of the lesson "what deep learning is not" (docs/not-cognition.md): fool the network, and open a cell of
the live confusion matrix to the pictures it counts. Why this answer and "not a digit" come with `POST /api/predict`."""

import fastapi
import pydantic
from fastapi import responses
from starlette import concurrency

from firstnet.errors import UserError
from firstnet.web import cells, network as web_network

# Test sets are 10,000 digits (MNIST) or fewer; the bound keeps a number out of all reason out of the server.
MAX_INDEX = 99_999
BUSY_SECONDS = 5


class FoolRequest(pydantic.BaseModel):
    """Which test digit to change, and into which digit the network should read it."""

    model_config = pydantic.ConfigDict(extra="forbid")
    index: int = pydantic.Field(ge=0, le=MAX_INDEX, description="a test digit's index, like 0 (a 7)")
    target: int = pydantic.Field(ge=0, le=9, description="the digit the network should read instead")
    min_probability: float | None = pydantic.Field(
        None, ge=0, lt=1, description="how sure the network must be of the wrong digit (0.9: sure; none: only just)")


def add_routes(app, playground, busy):
    """Add the lesson's routes to `app`; `busy(function, *args)` runs CPU work in the thread pool under the page's
    decoding semaphore (app.py), as a picture's answer is computed."""

    @app.post("/api/fool", summary="Change a test digit, too little for a person to see, until the network reads another",
              responses={409: {"description": "the loaded run is not a run on MNIST's digits"},
                         422: {"description": "index out of range, target is the digit's own label, or the network "
                                              "misreads that digit already"},
                         503: {"description": "no trained model yet, or another digit is being fooled"}})
    async def fool_digit(request: FoolRequest):
        """Answers with the `original` and `fooled` pictures (28x28, 0..255), their `difference`, what the network
        `read` before (with `read_probability`) and after (`fooled_read`, `probability` of the target), and the size
        of the change: `linf` (the most any pixel moved, of 255) and `l2`; `fooled_it` is False when even the
        largest change did not do it. Takes a few seconds (a convnet, ten)."""
        network = playground.network
        if network is None:
            raise fastapi.HTTPException(503, "no trained model yet: train one, then fool it")
        if not network.digits:
            raise fastapi.HTTPException(409, "the loaded run was not trained on MNIST's digits: fooling works on digit "
                                             "runs (train one from the page or with `firstnet train`)")
        try:
            answer = await busy(network.fool, request.index, request.target, request.min_probability)
        except web_network.Busy as error:
            raise fastapi.HTTPException(503, str(error), headers={"Retry-After": str(BUSY_SECONDS)}) from None
        except UserError as error:
            raise fastapi.HTTPException(422, str(error)) from None
        return responses.JSONResponse(answer)

    @app.get("/api/train/cell", summary="The pictures one cell of the live confusion matrix counts, with their scores",
             responses={404: {"description": "no evaluation yet"}, 422: {"description": "a digit or limit out of range"}})
    async def confusion_cell(true: int = fastapi.Query(ge=0, description="the digits' true label (the matrix's row)"),
                             predicted: int = fastapi.Query(ge=0, description="what the network read (its column)"),
                             limit: int = fastapi.Query(20, ge=1, le=cells.MAX_LIMIT, description="how many pictures")):
        """`count` is the cell's number in the matrix of the last evaluation (`after_epochs`); `pictures` the surest
        first, each with its `index` among the matrix's digits, `picture` (28x28, 0..255), `probability` of the
        digit read and `true_probability` of the right one, and all ten `probabilities`. After the run it is the
        final matrix's."""
        try:
            answer = await concurrency.run_in_threadpool(playground.training.confusion.cell, true, predicted, limit)
        except cells.NoEvaluation as error:
            raise fastapi.HTTPException(404, str(error)) from None
        except ValueError as error:
            raise fastapi.HTTPException(422, f"{error}: the matrix's rows and columns are its classes") from None
        return responses.JSONResponse(answer)
