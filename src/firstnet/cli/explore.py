"""`firstnet explore`: the data's shapes and values, as the tutorial explores them."""

from firstnet.cli import common

HELP = "the data's shapes and values, as the tutorial explores them"


def add_flags(parser):
    parser.add_argument("--index", type=common.non_negative_int, help="also print this training image's 28x28 pixel values")
    common.add_data_flag(parser, named=True)


def run(args):
    from firstnet import data, explore

    dataset = data.load_dataset(args.data, dataset=args.dataset)
    # The pixels first: an --index out of range is an error before anything is printed.
    pixels = explore.pixel_values(dataset, args.index) if args.index is not None else None
    print(explore.format_rows(explore.explore(dataset)))
    if pixels is not None:
        print()
        print(pixels)
