"""The `firstnet` command: a thin shell over the library, one subcommand per step of the lesson.

Deep-learning libraries are imported inside each command, never at the top, so `firstnet --help` answers at once.
"""

import argparse
import json
import os
import pathlib
import sys

from firstnet import __version__, bias, choices, finetune, kit
from firstnet.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (what is wrong, where to look) and exit code 2, without the usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}{did_you_mean(message)} (see `{self.prog} --help`)\n")


def did_you_mean(message):
    """"; did you mean 'train'?" for argparse's "invalid choice: 'trian' (choose from ...)", else ""."""
    import difflib
    import re

    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if not found:
        return ""
    offered = [choice.strip().strip("'") for choice in found.group(2).split(",")]
    close = difflib.get_close_matches(found.group(1), offered, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


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


def command_explore(args):
    from firstnet import data as mnist_data, explore

    dataset = mnist_data.load_mnist(args.data, dataset=args.dataset)
    # The pixels first: an --index out of range is an error before anything is printed.
    pixels = explore.pixel_values(dataset, args.index) if args.index is not None else None
    print(explore.format_rows(explore.explore(dataset)))
    if pixels is not None:
        print()
        print(pixels)


def command_show(args):
    from firstnet import data as mnist_data, explore

    dataset = mnist_data.load_mnist(args.data, dataset=args.dataset)
    print(explore.show(dataset, args.index, split=args.split, grid=args.grid or (1, 1), out=args.out))


def train_config(args, preset=None):
    """The TrainConfig that `train`'s and `scratch`'s flags ask for; a preset (`--fast`) fills what was not given."""
    from firstnet import train

    preset = preset or {}
    return train.TrainConfig(model=preset.get("model", "dense"), epochs=args.epochs or preset.get("epochs", 5),
                             batch_size=from_recipe(args.batch_size, preset, "batch_size"),
                             hidden_units=args.hidden_units, optimizer=from_recipe(args.optimizer, preset, "optimizer"),
                             dataset=getattr(args, "dataset", None),
                             learning_rate=args.learning_rate or preset.get("learning_rate"),
                             learning_rate_schedule=preset.get("learning_rate_schedule", "constant"),
                             validation_split=args.validation_split, seed=args.seed, data=args.data,
                             loop=getattr(args, "loop", None), devices=getattr(args, "devices", None),
                             run_dir=args.run_dir, verbose=0 if args.quiet else 1)


def command_train(args):
    from firstnet import startup

    if args.from_run:
        return finetune.command(args)
    # --resume RUN goes on with that run's own recipe and data (checkpoints.py), so other training flags are refused.
    data_path = resumed_data(args) if args.resume else args.data
    # Start-up tuning lives in startup.py: MNIST is read while Keras imports, and a helper process draws figures.
    if args.fast and args.model == "convnet":
        raise UserError("--fast is the dense network's shorter recipe; --model convnet has a short recipe of its own")
    data, figures, timings = startup.prepare_training(data_path, None if args.resume else args.dataset)
    from firstnet import train
    from firstnet.loops import events

    progress = events.ProgressBar(show_progress=not args.quiet)
    for fallback in timings["fallbacks"]:
        progress(events.Event("note", text=f"firstnet: {fallback}; training goes on, only slower to start"))
    config = train_config(args, train.CONVNET if args.model == "convnet" else train.FAST if args.fast else None)
    config.resume = args.resume
    result = train.train(config, data=data, watchers=[progress], figures=figures, timings=timings)
    print_scores(result.metrics["test_accuracy"], result.metrics["test_loss"])
    print_saved(result, "firstnet predict YOUR_DIGIT.png", quiet=args.quiet)
    return exit_code(result, "train")


def resumed_data(args):
    """The data path a run to resume trained on; a UserError for a run that cannot be resumed or extra flags."""
    from firstnet import checkpoints, train

    defaults = train.TrainConfig()
    given = [flag for flag, value, default in (
        ("--epochs", args.epochs, None), ("--seed", args.seed, None), ("--data", args.data, None),
        ("--run-dir", args.run_dir, None), ("--loop", args.loop, None), ("--learning-rate", args.learning_rate, None),
        ("--fast", args.fast, False), ("--batch-size", args.batch_size, defaults.batch_size),
        ("--hidden-units", args.hidden_units, defaults.hidden_units), ("--optimizer", args.optimizer, defaults.optimizer),
        ("--validation-split", args.validation_split, defaults.validation_split)) if value != default]
    if given:
        raise UserError(f"--resume goes on with the run's own settings; drop {', '.join(given)}")
    return checkpoints.read(args.resume).meta["recipe"]["data"]


def exit_code(result, command):
    """0 for a finished run; 130 for one stopped by Ctrl-C, whose model as trained so far was still saved.

    The run is not the one asked for: say so, and exit as Ctrl-C does, so that `firstnet train && ...` stops here.
    """
    if not result.metrics["interrupted"]:
        return 0
    print(f"firstnet {command}: stopped by Ctrl-C after {result.metrics['epochs_completed']} of "
          f"{result.metrics['epochs']} epochs; the model as trained so far is in {result.run_dir}/", file=sys.stderr)
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


def command_evaluate(args):
    from firstnet import data as mnist_data, evaluate, model as firstnet_model, runs, startup

    model_path = runs.resolve_model(args.model)
    model = firstnet_model.load_model(model_path)
    startup.enable_compilation_cache()
    run_metrics = runs.read_metrics(model_path.parent)
    # The run's own test digits unless --data names others: scoring on other digits measures something else.
    dataset, which = mnist_data.choose_run_data(run_metrics, args.data)
    scores = evaluate.evaluate_model(model, dataset.x_test, dataset.y_test)
    print(f"model: {model_path}")
    pictures = "digits" if dataset.dataset == "mnist" else "pictures"
    print(f"data: {dataset.source} ({len(dataset.x_test)} test {pictures}, {which})")
    print_scores(scores["test_accuracy"], scores["test_loss"])
    note = evaluate.seen_in_training_note(run_metrics, dataset)
    if note:
        print(note)
    names = dataset.class_names if len(dataset.class_names) == scores["confusion"].shape[0] else None
    kind = "digit" if names is None or dataset.dataset == "mnist" else "class"
    print(f"confusion matrix (rows: true {kind}, columns: predicted {kind}):")
    print(evaluate.format_confusion(scores["confusion"], names))
    bias.evaluate_command(args, model_path, run_metrics, dataset, scores)  # A class collection: beside MNIST's score.


def command_predict(args):
    from firstnet import model as firstnet_model, plots, predict, runs_table, runs

    files = predict.image_files(args.images)
    model_path = runs.resolve_model(args.model)
    model = firstnet_model.load_model(model_path)
    run_metrics = runs.read_metrics(model_path.parent)
    # A run of your own pictures: each picture made the way its training pictures were, answered by class name.
    results = predict.predict_files(model, files, run_metrics)
    names = predict.class_names_of(run_metrics, len(results[0]["probabilities"]))
    width = max(len(name) for name in names)
    # Which model answered comes first: the newest run may be an experiment rather than the lesson's network.
    if not args.json:
        print(runs_table.model_line(model_path, run_metrics))
    for result in results:
        if args.json:
            print(json.dumps({**{key: result[key] for key in ("file", "digit", "label", "probabilities")},
                              "model": str(model_path)}))
            continue
        print(f"{result['file']}: {result['label']}   (probability {result['probabilities'][result['digit']]:.3f})")
        for name, probability in zip(names, result["probabilities"]):
            print(f"  {name:>{width}}  {probability:6.3f}  {'█' * round(probability * 40)}")
    if args.show_input:
        images = [result["input"] for result in results]
        columns = min(len(images), 8)
        titles = [f"{short_name(pathlib.Path(result['file']).name)}: {result['label']}" for result in results]
        height, width = images[0].shape[:2]
        figure = plots.grid_figure(images, titles, -(-len(images) // columns), columns,
                                   suptitle=f"what the network saw ({width}x{height})")
        plots.save_figure(figure, args.show_input)
        if not args.json:
            print(f"saved {args.show_input}")


def command_runs(args):
    from firstnet import runs_table, runs

    from firstnet import checkpoints

    found = runs.list_runs(args.root)
    unfinished = checkpoints.unfinished_lines(args.root)
    if not found and not unfinished:
        print(f"no finished runs in {args.root}/ yet; run `firstnet train`")
        return
    if found:
        print(runs_table.runs_table(found, args.root))
    if unfinished:
        # Runs stopped by Ctrl-C or a crash, each with the command that goes on with it.
        print("\n".join(([""] if found else []) + unfinished))


def short_name(name, limit=14):
    """A file name cut to `limit` characters with "..." in the middle, so a picture's title fits above it."""
    return name if len(name) <= limit else f"{name[: limit - 7]}...{name[-4:]}"


def command_serve(args):
    from firstnet.web import server

    server.serve(model=args.model, host=args.host, port=args.port, runs_root=args.root, train=args.train, data=args.data,
                 collection=args.collection)


def command_scratch(args):
    from firstnet import scratch
    from firstnet.loops import events

    result = scratch.train(train_config(args), watchers=[events.ProgressBar(show_progress=not args.quiet)])
    print_scores(result.metrics["test_accuracy"], result.metrics["test_loss"])
    print_saved(result, f"compare with Keras: firstnet train --seed {result.metrics['seed']}", quiet=args.quiet)
    return exit_code(result, "scratch")


def command_tensors(args):
    from firstnet import data as mnist_data, tensors

    if args.out is not None:
        tensors.figure_folder(args.out)
    found = tensors.examples(mnist_data.load_mnist(args.data, dataset=args.dataset))
    print(tensors.format_table(found))
    if args.out is not None:
        written = tensors.save_figures(found, args.out)
        print("\nsaved " + ", ".join(str(path) for path in written))


def command_look(args):
    from firstnet import look

    summary = look.look(args.run_dir, data_path=args.data, root=args.root)
    print(look.format_summary(summary))


def build_parser():
    debug_help = "show the full traceback when something goes wrong"
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset to False the --debug given before it (`firstnet --debug show 9`).
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    parser = Parser(prog="firstnet", description="Your first neural network: the Keras MNIST lesson, step by step.")
    parser.add_argument("--debug", action="store_true", help=debug_help)
    parser.add_argument("--version", action="version", version=f"firstnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    explore = commands.add_parser("explore", parents=[common], help="the data's shapes and values, as the tutorial explores them")
    explore.add_argument("--index", type=non_negative_int, help="also print this training image's 28x28 pixel values")
    add_data_flag(explore, named=True)
    explore.set_defaults(handler=command_explore)

    show = commands.add_parser("show", parents=[common], help="look at a digit (PNG with --out, else text art)")
    show.add_argument("index", type=non_negative_int, help="which image, like 4 (the tutorial's train_images[4])")
    show.add_argument("--split", choices=("train", "test"), default="train")
    show.add_argument("--grid", type=grid_shape, help="show ROWSxCOLUMNS digits starting at INDEX, like 5x5")
    show.add_argument("--out", type=png_path, help="save the picture as this PNG file")
    add_data_flag(show, named=True)
    show.set_defaults(handler=command_show)

    train = commands.add_parser("train", parents=[common], help="train the tutorial's network and save a run folder")
    add_train_flags(train, named=True)
    train.add_argument("--devices", metavar="N|all",
                       help="train data-parallel on N devices, or all that JAX sees (keras.distribution; default 1)")
    train.add_argument("--loop", choices=choices.LOOPS,
                       help="how the fit runs: compiled (the fast loop, the default where supported) or fit "
                            "(Keras's own model.fit, the tutorial's call); both train the same way")
    train.add_argument("--resume", metavar="RUN",
                       help="go on with a run stopped by Ctrl-C or a crash, from its checkpoint, with its own settings "
                            "(`firstnet runs` lists them)")
    train.add_argument("--model", choices=choices.MODELS, default="dense",
                       help="dense: the tutorial's Dense(512) network (the default); convnet: the next lesson, a "
                            "convolutional network past 99.2%% on MNIST with its own recipe (3 epochs, adam at 0.004 "
                            "falling to 0 along a cosine, batch 128); flags given still override it")
    train.add_argument("--fast", action="store_true",
                       help="not the tutorial's recipe: a shorter one that reaches the same accuracy sooner (2 epochs, "
                            "learning rate 0.004 falling to 0 along a cosine)")
    finetune.add_flags(train)  # --from RUN --data COLLECTION: fine-tune on the class's own digits (finetune.py).
    train.set_defaults(handler=command_train)

    evaluate = commands.add_parser("evaluate", parents=[common], help="reload a saved model and score it on the test digits")
    evaluate.add_argument("model", nargs="?", help="a run folder or a model.keras file (default: the newest run)")
    add_data_flag(evaluate)
    bias.add_flags(evaluate)  # --out PNG, for `evaluate --data COLLECTION` (bias.py).
    evaluate.set_defaults(handler=command_evaluate)

    predict = commands.add_parser("predict", parents=[common], help="read your own digit from a photo or drawing")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP) or folders of them")
    predict.add_argument("--model", help="a run folder or model.keras (default: the newest run)")
    predict.add_argument("--json", action="store_true", help="one JSON object per image per line")
    predict.add_argument("--show-input", type=png_path, metavar="OUT.png", help="save the 28x28 images the network saw")
    predict.set_defaults(handler=command_predict)

    runs = commands.add_parser("runs", parents=[common], help="list past training runs")
    runs.add_argument("--root", default="runs", help="folder holding the runs (default runs)")
    runs.set_defaults(handler=command_runs)

    serve = commands.add_parser("serve", parents=[common], help="the draw-a-digit web page, on this computer")
    serve.add_argument("--model", metavar="RUN_DIR", help="a run folder or model.keras (default: the newest run)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    serve.add_argument("--port", type=port_number, default=8000, help="port to listen on (default 8000; 0: any free port)")
    serve.add_argument("--root", default="runs", help="folder holding the runs (default runs)")
    serve.add_argument("--train", action="store_true",
                       help="with no trained model yet, train one now with the tutorial's recipe (the page shows progress)")
    add_data_flag(serve)
    serve.add_argument("--collection", metavar="DIR", help="the class's digits, added on the page (default: collection/)")
    serve.set_defaults(handler=command_serve)
    scratch = commands.add_parser("scratch", parents=[common],
                                  help="the same network trained by a from-scratch NumPy twin; same run folder as train")
    add_train_flags(scratch)
    scratch.set_defaults(handler=command_scratch)
    tensors = commands.add_parser("tensors", parents=[common],
                                  help="the tutorial's tensor vocabulary (scalar to 5-D video) with real MNIST arrays")
    tensors.add_argument("--out", type=pathlib.Path, metavar="DIR",
                         help="also save figures here: vocabulary.png, images.png, video_filmstrip.png, video.gif")
    add_data_flag(tensors, named=True)
    tensors.set_defaults(handler=command_tensors)

    look = commands.add_parser("look", parents=[common],
                               help="look inside a trained run: weights, worst mistakes, learned representation")
    look.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (default: the newest run)")
    look.add_argument("--root", default="runs", help="folder holding the runs, for the default (default runs)")
    add_data_flag(look)
    look.set_defaults(handler=command_look)
    kit.add_command(commands, common)  # firstnet kit DIR: the classroom kit for laptops with no internet (kit.py).
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    # Keras and its backends talk a lot on import; a learner should see the lesson, not log lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from firstnet import data as mnist_data

    # Messages about data name the flag (--data PATH) here, not the library call; restored for callers in Python.
    where_before, mnist_data.WHERE = mnist_data.WHERE, "cli"
    try:
        if os.environ.get("KERAS_BACKEND") == "tensorflow" and args.command != "runs":
            from firstnet import startup

            # Inside the try: a Ctrl-C while TensorFlow loads is a Ctrl-C like any other.
            startup.import_keras_quietly()
        code = args.handler(args)
    except UserError as error:
        if args.debug:
            # The traceback for whoever debugs, and still the exit code of a user's mistake, so scripts see a 2.
            import traceback

            traceback.print_exc()
        print(f"firstnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nfirstnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped early (`firstnet explore --index 0 | head`): stop quietly, as Unix
        # tools do, and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        mnist_data.WHERE = where_before
    return code or 0


def run():
    """The `firstnet` program (console script and `python -m firstnet`): `main()`, then a quick exit.

    Tearing down Keras, JAX and matplotlib at exit costs Python most of a second, only to free memory the system
    reclaims anyway. Every file firstnet writes is complete and synced before `main()` returns, so the output is
    flushed and the process leaves at once. Code that calls `main()` itself keeps the ordinary exit.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    os._exit(code)
