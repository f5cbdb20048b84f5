"""`firstnet look`: inside a trained run, its weights, its worst mistakes and its learned representation."""

from firstnet.cli import common

HELP = "look inside a trained run: weights, worst mistakes, learned representation"


def add_flags(parser):
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (default: the newest run)")
    parser.add_argument("--root", default="runs", help="folder holding the runs, for the default (default runs)")
    common.add_data_flag(parser)


def run(args):
    from firstnet import look

    summary = look.look(args.run_dir, data_path=args.data, root=args.root)
    print(look.format_summary(summary))
