"""`firstnet train`: the tutorial's network trained and saved as a run folder; also --resume RUN and --from RUN."""

from firstnet import choices
from firstnet.cli import common
from firstnet.errors import UserError

HELP = "train the tutorial's network and save a run folder"


def add_flags(parser):
    common.add_train_flags(parser, named=True)
    parser.add_argument("--devices", metavar="N|all",
                        help="train data-parallel on N devices, or all that JAX sees (keras.distribution; default 1)")
    parser.add_argument("--loop", choices=choices.LOOPS,
                        help="how the fit runs: compiled (the fast loop, the default where supported) or fit "
                             "(Keras's own model.fit, the tutorial's call); both train the same way")
    parser.add_argument("--resume", metavar="RUN",
                        help="go on with a run stopped by Ctrl-C or a crash, from its checkpoint, with its own settings "
                             "(`firstnet runs` lists them)")
    parser.add_argument("--model", choices=choices.MODELS, default="dense",
                        help="dense: the tutorial's Dense(512) network (the default); convnet: the next lesson, a "
                             "convolutional network past 99.2%% on MNIST with its own recipe (3 epochs, adam at 0.004 "
                             "falling to 0 along a cosine, batch 128); flags given still override it")
    parser.add_argument("--augment", choices=choices.AUGMENTATIONS,
                        help="redraw each training picture a little differently every time it is seen, so that the "
                             "network reads other hands: stroke (heavier or lighter strokes; --model convnet's default), "
                             "all (also turned, slanted, resized, moved), none (the tutorial's default); layers at the "
                             "network's front, inactive in prediction (docs/lesson.md)")
    parser.add_argument("--fast", action="store_true",
                        help="not the tutorial's recipe: a shorter one that reaches the same accuracy sooner (2 epochs, "
                             "learning rate 0.004 falling to 0 along a cosine)")
    # --from RUN --data COLLECTION: fine-tune on the class's own digits (finetune.py).
    parser.add_argument("--from", dest="from_run", metavar="RUN",
                        help="fine-tune this trained run on --data COLLECTION (the class's own digits); a new run")
    parser.add_argument("--mix-mnist", type=float, default=None, metavar="RATIO",
                        help="with --from: MNIST training digits mixed in per collection digit (default 1.0: as many)")
    parser.add_argument("--held-out", type=float, default=None, metavar="FRACTION",
                        help=f"with --from: the part of each digit of the collection held out for the before/after score "
                             f"(default {choices.HELD_OUT_FRACTION}, the same seeded part every time)")


def run(args):
    from firstnet import startup

    if args.from_run:
        return finetune(args)
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
    config = common.train_config(args, train.CONVNET if args.model == "convnet" else train.FAST if args.fast else None)
    config.resume = args.resume
    if args.augment is not None:
        config.augment = args.augment
    result = train.train(config, data=data, watchers=[progress], figures=figures, timings=timings)
    common.print_scores(result.metrics["test_accuracy"], result.metrics["test_loss"])
    if result.metrics.get("learned") is False and not result.metrics["interrupted"]:
        # A run that did not learn says so plainly, and the next step is another recipe, not predicting with it.
        print(f"this run did not learn: {result.metrics['why']}; {train.TRY_INSTEAD}")
        common.print_saved(result, "train again with another recipe", quiet=args.quiet)
    else:
        common.print_saved(result, "firstnet predict YOUR_DIGIT.png", quiet=args.quiet)
    return common.exit_code(result, "train")


def resumed_data(args):
    """The data path a run to resume trained on; a UserError for a run that cannot be resumed or extra flags."""
    from firstnet import checkpoints, train

    defaults = train.TrainConfig()
    given = [flag for flag, value, default in (
        ("--epochs", args.epochs, None), ("--seed", args.seed, None), ("--data", args.data, None),
        ("--run-dir", args.run_dir, None), ("--loop", args.loop, None), ("--learning-rate", args.learning_rate, None),
        ("--fast", args.fast, False), ("--augment", args.augment, None), ("--batch-size", args.batch_size, defaults.batch_size),
        ("--hidden-units", args.hidden_units, defaults.hidden_units), ("--optimizer", args.optimizer, defaults.optimizer),
        ("--validation-split", args.validation_split, defaults.validation_split)) if value != default]
    if given:
        raise UserError(f"--resume goes on with the run's own settings; drop {', '.join(given)}")
    return checkpoints.read(args.resume).meta["recipe"]["data"]


def finetune(args):
    """`firstnet train --from RUN --data COLLECTION` (finetune.py); returns the exit code."""
    from firstnet import finetune
    from firstnet.loops import events

    refused = [name for name, given in (
        ("--resume", args.resume), ("--fast", args.fast), ("--dataset", args.dataset),
        ("--model convnet", args.model != "dense"), ("--devices", args.devices),
        ("--validation-split", args.validation_split), ("--hidden-units", args.hidden_units != 512),
        ("--optimizer", not isinstance(args.optimizer, common.FlagDefault))) if given]
    if refused:
        raise UserError(f"--from fine-tunes the run as it is; drop {', '.join(refused)}")
    if not args.data:
        raise UserError("--from RUN needs --data COLLECTION: the folder of the class's digits to fine-tune on")
    config = finetune.FinetuneConfig(
        from_run=args.from_run, data=args.data, epochs=args.epochs or finetune.FINETUNE_EPOCHS,
        batch_size=int(args.batch_size), learning_rate=args.learning_rate,
        mix_mnist=1.0 if args.mix_mnist is None else args.mix_mnist,
        held_out=choices.HELD_OUT_FRACTION if args.held_out is None else args.held_out, seed=args.seed,
        loop=args.loop, run_dir=args.run_dir, verbose=0 if args.quiet else 1)
    progress = events.ProgressBar(show_progress=not args.quiet)
    result = finetune.finetune(config, watchers=[progress])
    common.print_scores(result.metrics["test_accuracy"], result.metrics["test_loss"])
    common.print_saved(result, f"firstnet evaluate {result.run_dir} --data {args.data}", quiet=args.quiet)
    return common.exit_code(result, "train")
