"""`firstnet tensors`: the tutorial's tensor vocabulary (scalar to 5-D video) with real MNIST arrays."""

import pathlib

from firstnet.cli import common

HELP = "the tutorial's tensor vocabulary (scalar to 5-D video) with real MNIST arrays"


def add_flags(parser):
    parser.add_argument("--out", type=pathlib.Path, metavar="DIR",
                        help="also save figures here: vocabulary.png, images.png, video_filmstrip.png, video.gif")
    common.add_data_flag(parser, named=True)


def run(args):
    from firstnet import data, tensors

    if args.out is not None:
        tensors.figure_folder(args.out)
    found = tensors.examples(data.load_dataset(args.data, dataset=args.dataset))
    print(tensors.format_table(found))
    if args.out is not None:
        written = tensors.save_figures(found, args.out)
        print("\nsaved " + ", ".join(str(path) for path in written))
