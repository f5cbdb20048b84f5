"""`firstnet scratch`: the same network trained by a from-scratch NumPy twin, into the same run folder as train."""

from firstnet.cli import common

HELP = "the same network trained by a from-scratch NumPy twin; same run folder as train"


def add_flags(parser):
    common.add_train_flags(parser)


def run(args):
    from firstnet import scratch
    from firstnet.loops import events

    result = scratch.train(common.train_config(args), watchers=[events.ProgressBar(show_progress=not args.quiet)])
    common.print_scores(result.metrics["test_accuracy"], result.metrics["test_loss"])
    common.print_saved(result, f"compare with Keras: firstnet train --seed {result.metrics['seed']}", quiet=args.quiet)
    return common.exit_code(result, "scratch")
