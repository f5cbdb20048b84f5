"""The knobs a learner turns before training from the page, checked by pydantic and turned into a `TrainConfig`.

Every bound is in the schema (`/openapi.json`), so a value out of range or of the wrong type is a 422 that says
what is allowed, before any training starts. A knob left out (null) takes the recipe's value: the tutorial's, or
`--fast`'s (train.FAST), or the convnet's (train.CONVNET), exactly as `firstnet train` fills flags not typed.
"""

from typing import Literal

import pydantic

from firstnet.choices import MODELS, OPTIMIZERS

# Kept small enough that a class's laptops train in seconds to minutes, large enough for every real experiment.
MAX_EPOCHS = 50
MAX_BATCH = 4096
MAX_HIDDEN = 4096


class Knobs(pydantic.BaseModel):
    """What to train: the network, the recipe, and the settings `firstnet train` takes as flags."""

    model_config = pydantic.ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"epochs": 2, "hidden_units": 32, "seed": 0}, {"fast": True}, {"model": "convnet", "epochs": 1}]})

    model: Literal[MODELS] = pydantic.Field("dense", description="dense: the tutorial's Dense(512) network; "
                                                                 "convnet: the next lesson's convolutional one")
    fast: bool = pydantic.Field(False, description="the dense network's shorter recipe (train.FAST): 2 epochs, "
                                                   "learning rate 0.004 falling to 0 along a cosine")
    epochs: int | None = pydantic.Field(None, ge=1, le=MAX_EPOCHS, description="passes over the training digits "
                                        "(default: the recipe's, 5 for the tutorial)")
    batch_size: int | None = pydantic.Field(None, ge=1, le=MAX_BATCH, description="digits per weight update "
                                            "(default 128)")
    hidden_units: int = pydantic.Field(512, ge=1, le=MAX_HIDDEN, description="units in the dense network's hidden "
                                       "layer (the convnet ignores it)")
    optimizer: Literal[OPTIMIZERS] | None = pydantic.Field(None, description="default: rmsprop (convnet: adam)")
    learning_rate: float | None = pydantic.Field(None, gt=0, le=1, allow_inf_nan=False,
                                                 description="default: the optimizer's own, or the recipe's")
    validation_split: float = pydantic.Field(0.0, ge=0, le=0.5, allow_inf_nan=False,
                                             description="fraction of training digits held out to watch for "
                                                         "overfitting, like 0.1")
    seed: int | None = pydantic.Field(None, ge=0, lt=2**31, description="same seed, same numbers (default: random)")
    train_digits: int | None = pydantic.Field(None, ge=100, le=1_000_000, description="train on only the first "
                                              "this many training digits: quicker on a slow laptop (default: all)")

    @pydantic.model_validator(mode="after")
    def _recipes_fit(self):
        # The same rule as `firstnet train --fast --model convnet`, said the same way.
        if self.fast and self.model == "convnet":
            raise ValueError("fast is the dense network's shorter recipe; the convnet has a short recipe of its own")
        return self

    def recipe(self):
        """The recipe the knobs left out fall back to, as a dict of TrainConfig fields."""
        from firstnet import train

        return dict(train.CONVNET) if self.model == "convnet" else dict(train.FAST) if self.fast else {}

    def config(self, **fields):
        """The TrainConfig these knobs ask for; `fields` (run_dir, data, runs_root) come from the server."""
        from firstnet import train

        recipe = self.recipe()
        chosen = {name: getattr(self, name) for name in ("epochs", "batch_size", "optimizer", "learning_rate")
                  if getattr(self, name) is not None}
        return train.TrainConfig(**{**recipe, **chosen, "model": self.model, "hidden_units": self.hidden_units,
                                    "validation_split": self.validation_split, "seed": self.seed,
                                    "verbose": 0, **fields})
