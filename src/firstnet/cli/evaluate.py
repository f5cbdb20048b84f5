"""`firstnet evaluate [RUN]`: reload a saved model and score it on the test digits; beside it, on the class's own."""

import pathlib

from firstnet.cli import common
from firstnet.errors import UserError

HELP = "reload a saved model and score it on the test digits"


def add_flags(parser):
    parser.add_argument("model", nargs="?", help="a run folder or a model.keras file (default: the newest run)")
    # The same as the positional RUN, under the name predict and serve use, so that "pass --model RUN_DIR" is true.
    parser.add_argument("--model", dest="model_flag", metavar="RUN_DIR", help="the same as RUN: a run folder or model.keras")
    common.add_data_flag(parser)
    parser.add_argument("--out", type=common.png_path, help="with --data COLLECTION: save the worst mistakes on our "
                        "digits here (default: ours_mistakes.png in the run folder)")


def run(args):
    from firstnet import data, evaluate, model as firstnet_model, runs, startup
    from firstnet.data import collection

    if args.model and args.model_flag and args.model != args.model_flag:
        raise UserError(f"{args.model} and --model {args.model_flag}: name one run")
    model_path = runs.resolve_model(args.model or args.model_flag)
    run_metrics = runs.read_metrics(model_path.parent)
    model = firstnet_model.load_model(model_path)
    startup.enable_compilation_cache()
    # The run's own test digits unless --data names others: scoring on other digits measures something else.
    dataset, which = data.choose_run_data(run_metrics, args.data)
    scores = evaluate.evaluate_model(model, dataset.x_test, dataset.y_test)
    print(f"model: {model_path}")
    pictures = "digits" if dataset.dataset == "mnist" else "pictures"
    # A collection's source already counts its pictures ("... (71 pictures)"): the count is said once.
    counted = f"({len(dataset.x_test)} pictures)" in dataset.source
    print(f"data: {dataset.source} ({'' if counted else f'{len(dataset.x_test)} test {pictures}, '}{which})")
    common.print_scores(scores["test_accuracy"], scores["test_loss"])
    note = evaluate.seen_in_training_note(run_metrics, dataset)
    if note:
        print(note)
    names = dataset.class_names if len(dataset.class_names) == scores["confusion"].shape[0] else None
    kind = "digit" if names is None or dataset.dataset == "mnist" else "class"
    print(f"confusion matrix (rows: true {kind}, columns: predicted {kind}):")
    print(evaluate.format_confusion(scores["confusion"], names))
    calibration(scores["probabilities"], dataset.y_test, model_path.parent)
    if args.data and collection.is_collection(args.data):  # A class collection: beside MNIST's score.
        beside_mnist(args, model_path, run_metrics, dataset, scores)


def calibration(probabilities, labels, run_dir):
    """How far to trust its probabilities: the expected calibration error, and the reliability diagram in the run."""
    from firstnet import calibration as calibrating, plots

    ece = calibrating.expected_calibration_error(probabilities, labels)
    print(f"calibration: ECE {ece:.4f} (how far its confidence is from its accuracy; 0 is honest)")
    out = run_dir / "reliability.png"
    try:
        plots.save_figure(calibrating.reliability_figure(probabilities, labels), out)
    except OSError as error:
        # The scores above are what the learner asked for; a run folder they cannot write to only loses the figure.
        print(f"could not save {out}: {error.strerror or error}")
        return
    print(f"saved {out} (the reliability diagram: how often it is right at each level of confidence)")


def beside_mnist(args, model_path, run_metrics, dataset, scores):
    """`firstnet evaluate RUN --data COLLECTION`'s comparison with MNIST (shift.py): printed, and the mistakes drawn."""
    from firstnet import plots, shift

    report = shift.score_report(scores["probabilities"], dataset.y_test, run_metrics)
    print(shift.format_report(report))
    note = shift.seen_note(run_metrics, args.data)
    if note:
        print(note)
    if not report["worst"]:
        print("it reads every one of our digits correctly: no mistakes to draw")
        return report
    out = pathlib.Path(args.out) if args.out else model_path.parent / "ours_mistakes.png"
    plots.save_figure(shift.mistakes_figure(dataset.x_test, report), out)
    print(f"saved {out} (the {len(report['worst'])} worst of its {report['wrong_count']} mistakes on our digits)")
    return report
