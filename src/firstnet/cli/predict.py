"""`firstnet predict IMAGE...`: read your own digit from a photo or drawing, with the ten probabilities."""

import json
import pathlib

from firstnet.cli import common

HELP = "read your own digit from a photo or drawing"


def add_flags(parser):
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP) or folders of them")
    parser.add_argument("--model", help="a run folder or model.keras (default: the newest run)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image per line")
    parser.add_argument("--show-input", type=common.png_path, metavar="OUT.png", help="save the 28x28 images the network saw")


def run(args):
    from firstnet import images, model as firstnet_model, plots, predict, runs, runs_table
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
    # Which model answered comes first: the newest run may be an experiment rather than the lesson's network.
    if not args.json:
        print(runs_table.model_line(model_path, run_metrics))
    for result in results:
        if args.json:
            print(json.dumps({**{key: result[key] for key in ("file", "digit", "label", "probabilities")},
                              "model": str(model_path)}))
            continue
        print(f"{shown(result['file'])}: {shown(result['label'])}   (probability {result['probabilities'][result['digit']]:.3f})")
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


def short_name(name, limit=14):
    """A file name cut to `limit` characters with "..." in the middle, so a picture's title fits above it."""
    return name if len(name) <= limit else f"{name[: limit - 7]}...{name[-4:]}"
