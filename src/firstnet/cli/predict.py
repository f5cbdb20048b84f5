"""`firstnet predict IMAGE...`: read your own digit from a photo or drawing, with the ten probabilities."""

import json
import pathlib
import sys

from firstnet.cli import common

HELP = "read your own digit from a photo or drawing"


def add_flags(parser):
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP) or folders of them")
    parser.add_argument("--model", help="a run folder or model.keras (default: the newest run)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image per line")
    parser.add_argument("--show-input", type=common.png_path, metavar="OUT.png", help="save the 28x28 images the network saw")


def run(args):
    from firstnet import abstain, images, model as firstnet_model, plots, predict, runs, runs_table
    from firstnet.names import shown

    files = images.image_files(args.images)
    model_path = runs.resolve_model(args.model)
    # The run's files are checked first (run_files.py): a damaged metrics.json is one line before any model loads.
    run_metrics = runs.read_metrics(model_path.parent)
    model = firstnet_model.load_model(model_path)
    # A run of your own pictures: each picture made the way its training pictures were, answered by class name.
    results = predict.predict_files(model, files, run_metrics)
    # Names and file names as the terminal should show them (names.py): hidden characters escaped.
    names = [shown(name) for name in predict.class_names_of(run_metrics, len(results[0]["probabilities"]))]
    width = max(len(name) for name in names)
    # On digit runs, an honest "this does not look like the digits I learned" (abstain.py); other runs' classes are
    # the learner's own, and the detector knows only what is not a digit.
    abstained = not_a_digit(model_path.parent, model, run_metrics, results) if predict.is_digit_run(run_metrics) else None
    # Which model answered comes first: the newest run may be an experiment rather than the lesson's network.
    if not args.json:
        print(runs_table.model_line(model_path, run_metrics))
    for index, result in enumerate(results):
        said = result["probabilities"][result["digit"]]
        if args.json:
            # An abstention keeps the digit it would have chosen and its probability beside it.
            extra = {"not_a_digit": abstained[index], "probability": said} if abstained is not None else {}
            print(json.dumps({**{key: result[key] for key in ("file", "digit", "label", "probabilities")}, **extra,
                              "model": str(model_path)}))
            continue
        if abstained is not None and abstained[index]:
            print(f"{shown(result['file'])}: {abstain.WORDS}; if it were one, a {shown(result['label'])} ({said:.0%})")
        else:
            print(f"{shown(result['file'])}: {shown(result['label'])}   (probability {said:.3f})")
        for name, probability in zip(names, result["probabilities"]):
            print(f"  {name:>{width}}  {probability:6.3f}  {'█' * round(probability * 40)}")
    if args.show_input:
        seen = [result["input"] for result in results]
        columns = min(len(seen), 8)
        titles = [f"{short_name(pathlib.Path(result['file']).name)}: {result['label']}" for result in results]
        height, width = seen[0].shape[:2]
        figure = plots.grid_figure(seen, titles, -(-len(seen) // columns), columns,
                                   suptitle=f"what the network saw ({width}x{height})")
        plots.save_figure(figure, args.show_input)
        if not args.json:
            print(f"saved {args.show_input}")


def not_a_digit(run_dir, model, run_metrics, results):
    """For each picture, True when it does not look like the digits the run learned (abstain.py's rule).

    The rule is fitted once per run and kept in the run folder (not_a_digit.npz); fitting takes about a minute, so
    the learner is told why they wait. A run folder that cannot be written to gets a rule that lasts this command.
    """
    import numpy as np

    from firstnet import abstain, data

    rule = abstain.load_rule(run_dir)
    if rule is None:
        print("learning what is not a digit for this run, once: about a minute", file=sys.stderr)
        rule = abstain.fit_rule(model, data.load_run_data(run_metrics))
        try:
            abstain.save_rule(run_dir, rule)
        except OSError as error:
            print(f"could not keep it in {run_dir} ({error.strerror or error}): it will be learnt again next time",
                  file=sys.stderr)
    return [answer["not_a_digit"] for answer in abstain.answers(model, np.stack([r["input"] for r in results]), rule)]


def short_name(name, limit=14):
    """A file name cut to `limit` characters with "..." in the middle, so a picture's title fits above it."""
    return name if len(name) <= limit else f"{name[: limit - 7]}...{name[-4:]}"
