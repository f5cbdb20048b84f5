"""`firstnet look`: inside a trained run, its weights, its worst mistakes and its learned representation; with --cell,
the test pictures behind one cell of its confusion matrix."""

import argparse

from firstnet.cli import common

HELP = "look inside a trained run: weights, worst mistakes, learned representation"


def confusion_cell(text):
    true, comma, predicted = text.partition(",")
    if not (comma and true.strip().isdigit() and predicted.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not TRUE,PREDICTED, like 4,9 (fours read as nines)")
    return int(true), int(predicted)


def add_flags(parser):
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (default: the newest run)")
    parser.add_argument("--root", default="runs", help="folder holding the runs, for the default (default runs)")
    parser.add_argument("--cell", type=confusion_cell, metavar="TRUE,PREDICTED",
                        help="only the test pictures in this cell of the confusion matrix, like 4,9: listed with their "
                             "probabilities and drawn into look_cell_4_as_9.png in the run folder")
    common.add_data_flag(parser)


def run(args):
    from firstnet import look

    if args.cell:
        true, predicted = args.cell
        print(look.format_cell(look.look_cell(args.run_dir, true, predicted, data_path=args.data, root=args.root)))
        return
    summary = look.look(args.run_dir, data_path=args.data, root=args.root)
    print(look.format_summary(summary))
