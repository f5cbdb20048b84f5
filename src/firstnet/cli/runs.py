"""`firstnet runs`: the past training runs as a table, and the unfinished ones with the command that goes on."""

HELP = "list past training runs"


def add_flags(parser):
    parser.add_argument("--root", default="runs", help="folder holding the runs (default runs)")


def run(args):
    from firstnet import checkpoints, runs, runs_table

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
