"""What the subcommands share: argparse types that explain a mistake, the data and training flags, and how a run is reported."""

import argparse
import pathlib
import sys

from firstnet import choices
from firstnet.errors import UserError


def number(convert, what, accepts, rule):
    """An argparse type: `text` converted to a number, which must pass `accepts`; otherwise one line on what is wrong."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        return value

    return parse


positive_int = number(int, "a whole number", lambda value: value >= 1, "must be at least 1")
non_negative_int = number(int, "a whole number", lambda value: value >= 0, "must be 0 or more")
positive_float = number(float, "a number", lambda value: 0 < value < float("inf"), "must be a positive number")
fraction = number(float, "a number", lambda value: 0 <= value < 1, "must be at least 0 and below 1, like 0.1")
port_number = number(int, "a port number, like 8000", lambda value: 0 <= value <= 65535,
                     "must be a port from 1 to 65535, or 0 for any free port")


def grid_shape(text):
    rows, _, columns = text.lower().partition("x")
    if not (rows.isdigit() and columns.isdigit() and int(rows) > 0 and int(columns) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not ROWSxCOLUMNS, like 5x5")
    return int(rows), int(columns)


def png_path(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"{text!r} must end in .png")
    return pathlib.Path(text)


def add_data_flag(parser, named=False):
    if named:
        parser.add_argument("--dataset", choices=choices.DATASETS,
                            help="a dataset by name, from keras's cache or download: mnist or fashion_mnist")
    parser.add_argument("--data", metavar="PATH", help="MNIST to use: mnist.npz, or a folder of IDX, PNG or CSV files; or "
                        "your own pictures, one folder per class (FOLDER/train/<class>/ and FOLDER/test/<class>/, or "
                        "FOLDER/<class>/) (default: $FIRSTNET_DATA, keras's cache, a download, or the bundled "
                        "5,000-digit subset)")


class FlagDefault:
    """A flag's default value that remembers it was not typed, so that a recipe (`--model convnet`) may replace it.

    It equals the plain value (128 == 128), so code that compares flags with their defaults reads it as before.
    """


class DefaultInt(int, FlagDefault):
    pass


class DefaultText(str, FlagDefault):
    pass


def from_recipe(value, preset, name):
    """A flag's value: what the learner typed, else the recipe's (`preset`), else the flag's default."""
    if isinstance(value, FlagDefault):
        return preset.get(name, type(value).__mro__[1](value))
    return value


def add_train_flags(parser, named=False):
    """The flags shared by `train` and its from-scratch twin: the tutorial's recipe is the default."""
    parser.add_argument("--epochs", type=positive_int, help="passes over the training set (default 5; train --fast: 2)")
    parser.add_argument("--batch-size", type=positive_int, default=DefaultInt(128),
                        help="pictures per weight update (default 128)")
    parser.add_argument("--hidden-units", type=positive_int, default=512, help="units in the hidden layer (default 512)")
    parser.add_argument("--optimizer", default=DefaultText("rmsprop"), choices=choices.OPTIMIZERS,
                        help="default rmsprop, as in the tutorial (--model convnet: adam)")
    parser.add_argument("--learning-rate", type=positive_float, help="default: the optimizer's own (rmsprop: 0.001); train --fast: 0.004, "
                                                                   "then a cosine decay")
    parser.add_argument("--validation-split", type=fraction, default=0.0,
                        help="fraction of training digits held out to watch for overfitting, like 0.1 (default 0)")
    parser.add_argument("--seed", type=non_negative_int, help="same seed, same machine, same backend: same metrics")
    parser.add_argument("--run-dir", metavar="DIR", help="where to save the run (default runs/<date>_<time>)")
    add_data_flag(parser, named)
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the final scores")


def train_config(args, preset=None):
    """The TrainConfig that `train`'s and `scratch`'s flags ask for; a preset (`--fast`) fills what was not given."""
    from firstnet import train

    preset = preset or {}
    return train.TrainConfig(model=preset.get("model", "dense"), augment=preset.get("augment", "none"), epochs=args.epochs or preset.get("epochs", 5),
                             batch_size=from_recipe(args.batch_size, preset, "batch_size"),
                             hidden_units=args.hidden_units, optimizer=from_recipe(args.optimizer, preset, "optimizer"),
                             dataset=getattr(args, "dataset", None),
                             learning_rate=args.learning_rate or preset.get("learning_rate"),
                             learning_rate_schedule=preset.get("learning_rate_schedule", "constant"),
                             validation_split=args.validation_split, seed=args.seed, data=args.data,
                             loop=getattr(args, "loop", None), devices=getattr(args, "devices", None),
                             run_dir=args.run_dir, verbose=0 if args.quiet else 1)


def exit_code(result, command):
    """0 for a finished run; 130 for one stopped by Ctrl-C, whose model as trained so far was still saved.

    The run is not the one asked for: say so, and exit as Ctrl-C does, so that `firstnet train && ...` stops here.
    """
    if not result.metrics["interrupted"]:
        return 0
    # The checkpoint (checkpoints.py) is what lets the run go on; a run stopped before its first one cannot.
    resumable = (pathlib.Path(result.run_dir) / "checkpoint.npz").is_file()
    go_on = (f"go on with `firstnet train --resume {result.run_dir}`" if resumable else
             "it stopped before its first checkpoint, so it cannot be resumed: train again")
    print(f"firstnet {command}: stopped by Ctrl-C after {result.metrics['epochs_completed']} of "
          f"{result.metrics['epochs']} epochs; the model as trained so far is in {result.run_dir}/ (not used by "
          f"predict or serve unless named); {go_on}", file=sys.stderr)
    return 130


def print_saved(result, alternative, quiet=False):
    """Where a finished run was saved (always: a run the learner cannot find is lost), and what to try next."""
    if quiet:
        print(f"saved {result.run_dir}/")
        return
    print(f"saved {result.run_dir}/ (model.keras, metrics.json, history.json, curves.png, confusion.png) "
          f"in {result.metrics['total_seconds']:.1f} s")
    print(f"next: firstnet evaluate {result.run_dir}   or   {alternative}")


def print_scores(test_accuracy, test_loss):
    # The tutorial ends with these two lines; firstnet ends the same way.
    print(f"test_acc: {test_accuracy:.4f}")
    print(f"test_loss: {test_loss:.4f}")


def load_digit_run(run, command):
    """The model.keras path, the model and the metrics of a run on MNIST's digits (`run` as the learner named it, or
    the newest); one line and exit 2 for a run on other pictures."""
    from firstnet import model as firstnet_model, predict, runs

    model_path = runs.resolve_model(run)
    model = firstnet_model.load_model(model_path)
    run_metrics = runs.read_metrics(model_path.parent)
    if not predict.is_digit_run(run_metrics):
        raise UserError(f"{model_path.parent} was trained on {run_metrics.get('dataset') or 'your own pictures'}, not "
                        f"MNIST's digits; `firstnet {command}` works on digit runs (`firstnet train` makes one)")
    return model_path, model, run_metrics
