"""`firstnet show INDEX`: look at a digit, as a PNG with --out or else as text art."""

from firstnet.cli import common

HELP = "look at a digit (PNG with --out, else text art)"


def add_flags(parser):
    parser.add_argument("index", type=common.non_negative_int, help="which image, like 4 (the tutorial's train_images[4])")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--grid", type=common.grid_shape, help="show ROWSxCOLUMNS digits starting at INDEX, like 5x5")
    parser.add_argument("--out", type=common.png_path, help="save the picture as this PNG file")
    common.add_data_flag(parser, named=True)


def run(args):
    from firstnet import data, explore

    dataset = data.load_dataset(args.data, dataset=args.dataset)
    print(explore.show(dataset, args.index, split=args.split, grid=args.grid or (1, 1), out=args.out))
