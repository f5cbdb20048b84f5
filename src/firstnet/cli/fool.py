"""`firstnet fool [RUN] --index N --target D`: change a test digit the network reads right, too little for a person to
see, until the network reads another digit."""

import pathlib

from firstnet.cli import common

HELP = "change a test digit unseen until it is read as another digit"
digit = common.number(int, "a digit", lambda value: 0 <= value <= 9, "must be a digit from 0 to 9")
probability = common.number(float, "a number", lambda value: 0 <= value < 1, "must be at least 0 and below 1, like 0.9")


def add_flags(parser):
    parser.add_argument("run", nargs="?", metavar="RUN", help="a run folder or model.keras (default: the newest run)")
    parser.add_argument("--index", type=common.non_negative_int, required=True,
                        help="which test digit, like 0 (the tutorial's test_images[0], a 7)")
    parser.add_argument("--target", type=digit, required=True, help="the digit the network should read instead")
    # The smallest change only just makes the wrong digit win (its probability near the runner-up's, 0.3 to 0.5 on
    # the lesson's networks): asking for 0.9 shows a network sure of an answer a person would call wrong.
    parser.add_argument("--min-probability", type=probability, default=0.9,
                        help="how sure the network must be of the wrong digit (default 0.9; 0: only just the first)")
    parser.add_argument("--out", type=common.png_path, metavar="OUT.png",
                        help="where to save the digit, the fooled digit and the change side by side "
                             "(default: fool_<index>_as_<target>.png in the current folder)")
    common.add_data_flag(parser)


def run(args):
    from firstnet import data, files, fool
    from firstnet.errors import UserError

    model_path, model, run_metrics = common.load_digit_run(args.run, "fool")
    # The run's own test digits, as `firstnet evaluate` scores it.
    dataset, _ = data.choose_run_data(run_metrics, args.data)
    count = len(dataset.x_test)
    if args.index >= count:
        raise UserError(f"--index {args.index}: out of range; the test set has {count} digits, so use 0 to {count - 1}")
    label = int(dataset.y_test[args.index])
    if args.target == label:
        raise UserError(f"test digit {args.index} is a {label} already: choose another --target")
    try:
        result = fool.fool(model, dataset.x_test[args.index], args.target, label=label,
                           min_probability=args.min_probability)
    except ValueError as error:  # The network misreads the digit already: the library's words say so.
        raise UserError(f"test digit {args.index}: {error}") from None
    out = pathlib.Path(args.out) if args.out else pathlib.Path(f"fool_{args.index}_as_{args.target}.png")
    files.write_bytes(out, fool.fool_png(result))
    print(f"test digit {args.index}: a {label}, read as {result['read']} ({result['read_probability']:.1%}) by "
          f"{model_path}")
    if result["fooled_it"]:
        print(f"changed, it is read as {args.target} ({result['probability']:.1%}): each pixel moved by at most "
              f"{result['linf']} of 255 levels (L-inf), L2 size {result['l2']:.0f}")
    else:
        print(f"not fooled: changing each pixel by up to {result['bound']} of 255 levels gives {args.target} only "
              f"{result['probability']:.1%}, below --min-probability {args.min_probability}")
    print(f"how: {fool.METHOD}")
    print(f"saved {out} (the digit, the changed digit and the change magnified)")
